// Class lookup that works across class orders: the model's own index, a WordNet id, or an exact
// class name (the full ImageNet string or any one of its comma-separated synonyms, any case).
import type { ClassInfo } from './model.js';

export function resolveClass(classes: readonly ClassInfo[], spec: string | number, modelId = 'this model'): ClassInfo {
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
  const synonym = classes.filter((x) => x.name.split(',').some((part) => part.trim().toLowerCase() === want));
  if (synonym.length === 1) return synonym[0]!;
  if (synonym.length > 1) throw new Error(`class name "${s}" is ambiguous for ${modelId}: ${synonym.map((c) => `${c.index} ${c.name}`).join('; ')}`);
  throw new Error(`no class named "${s}" in ${modelId} (give an index, a WordNet id like n01440764, or an exact name)`);
}
