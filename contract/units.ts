// How a person names a unit, the same in the window's search box and in every CLI `--unit`:
// a class of the logits layer by index, WordNet id (n01440764) or name (the full ImageNet string
// or one of its comma-separated synonyms, any case), or any layer's channel as `layer:unit`
// (layer by name or display name).

/** A class of the logits layer; its index is its position in the model's class list. */
export interface NamedClass {
  wnid: string | null;
  name: string;
}

export interface NamedLayer {
  name: string;
  display: string;
  units: number;
}

/** `layer:unit` split off a spec, or null when the spec names no layer. */
export function splitLayerUnit(spec: string): { layer: string; unit: number } | null {
  const m = /^\s*([^:\s][^:]*?)\s*:\s*(\d+)\s*$/.exec(spec);
  return m ? { layer: m[1]!, unit: Number(m[2]) } : null;
}

/** The layer a name or display name refers to. */
export function findLayer<L extends NamedLayer>(layers: readonly L[], name: string): L | undefined {
  return layers.find((l) => l.name === name) ?? layers.find((l) => l.display === name) ?? layers.find((l) => l.display.toLowerCase() === name.toLowerCase());
}

/** The class an index, WordNet id or exact name (or unambiguous synonym) names; throws a one-line reason. */
export function resolveClass<C extends NamedClass>(classes: readonly C[], spec: string | number, modelId = 'this model'): C {
  const s = String(spec).trim();
  if (/^\d+$/.test(s)) {
    const c = classes[Number(s)];
    if (!c) throw new Error(`class index ${s} is out of range for ${modelId} (0…${classes.length - 1})`);
    return c;
  }
  if (/^n\d{8}$/.test(s)) {
    const c = classes.find((x) => x.wnid === s);
    if (!c) throw new Error(`WordNet id ${s} is not one of ${modelId}'s classes`);
    return c;
  }
  const want = s.toLowerCase();
  const exact = classes.find((x) => x.name.toLowerCase() === want);
  if (exact) return exact;
  const synonym = classes.filter((x) => synonyms(x.name).some((part) => part.toLowerCase() === want));
  if (synonym.length === 1) return synonym[0]!;
  if (synonym.length > 1) throw new Error(`class name "${s}" is ambiguous for ${modelId}: ${synonym.map((c) => `${classes.indexOf(c)} ${c.name}`).join('; ')}`);
  throw new Error(`no class named "${s}" in ${modelId} (give an index, a WordNet id like n01440764, an exact name, or layer:unit)`);
}

export function synonyms(name: string): string[] {
  return name.split(',').map((p) => p.trim()).filter(Boolean);
}

/** The first synonym: what a label shows when space is short. */
export function shortName(name: string): string {
  return synonyms(name)[0] ?? name;
}

export interface UnitRef {
  layer: string;
  unit: number;
}

/**
 * A unit from a spec: `layer:unit` on any layer; otherwise a class of the logits layer. Throws a
 * one-line reason naming what was wrong and what is accepted.
 */
export function resolveUnit(
  model: { id: string; layers: readonly NamedLayer[]; logitsLayer: string | null; classes: readonly NamedClass[] },
  spec: string,
): UnitRef & { label: string } {
  const lu = splitLayerUnit(spec);
  if (lu) {
    const l = findLayer(model.layers, lu.layer);
    if (!l) throw new Error(`no layer "${lu.layer}" in ${model.id} (layers: ${model.layers.map((x) => x.display).join(', ')})`);
    if (lu.unit >= l.units) throw new Error(`unit ${lu.unit} is out of range for layer ${l.display} of ${model.id} (0…${l.units - 1})`);
    const cls = l.name === model.logitsLayer ? model.classes[lu.unit] : undefined;
    return { layer: l.name, unit: lu.unit, label: `${l.display}:${lu.unit}${cls ? ` ${shortName(cls.name)}` : ''}` };
  }
  if (!model.logitsLayer) throw new Error(`${model.id} has no logits layer: name a unit as layer:unit`);
  const c = resolveClass(model.classes, spec, model.id);
  const index = model.classes.indexOf(c);
  const l = findLayer(model.layers, model.logitsLayer);
  return { layer: l?.name ?? model.logitsLayer, unit: index, label: `${l?.display ?? model.logitsLayer}:${index} ${shortName(c.name)}` };
}

export interface UnitMatch extends UnitRef {
  /** What the suggestion list shows, e.g. "logits:130 flamingo (n02007558)". */
  label: string;
}

/**
 * Suggestions for a partly typed spec, best first: an exact unit (index, WordNet id, `layer:unit`),
 * then classes whose name starts with the text, then those containing it.
 */
export function searchUnits(
  model: { id: string; layers: readonly NamedLayer[]; logitsLayer: string | null; classes: readonly NamedClass[] },
  query: string,
  limit = 8,
): UnitMatch[] {
  const q = query.trim();
  if (!q) return [];
  const out: UnitMatch[] = [];
  const seen = new Set<string>();
  const push = (m: UnitMatch) => {
    const k = `${m.layer}:${m.unit}`;
    if (seen.has(k) || out.length >= limit) return;
    seen.add(k);
    out.push(m);
  };
  const logits = model.logitsLayer ? findLayer(model.layers, model.logitsLayer) : undefined;
  const classMatch = (c: NamedClass, index: number): UnitMatch => ({
    layer: logits!.name,
    unit: index,
    label: `${logits!.display}:${index} ${c.name}${c.wnid ? ` (${c.wnid})` : ''}`,
  });
  try {
    const exact = resolveUnit(model, q);
    const c = exact.layer === logits?.name ? model.classes[exact.unit] : undefined;
    push(c ? classMatch(c, exact.unit) : exact);
  } catch {
    // not a complete spec: fall through to name matches
  }
  if (logits && !splitLayerUnit(q)) {
    const want = q.toLowerCase();
    const starts: number[] = [];
    const contains: number[] = [];
    model.classes.forEach((c, i) => {
      const parts = synonyms(c.name).map((p) => p.toLowerCase());
      if (parts.some((p) => p.startsWith(want))) starts.push(i);
      else if (c.name.toLowerCase().includes(want) || c.wnid?.startsWith(want)) contains.push(i);
    });
    for (const i of [...starts, ...contains]) push(classMatch(model.classes[i]!, i));
  }
  return out;
}
