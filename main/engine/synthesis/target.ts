// What to synthesise, as a person names it: a layer (name or display name, or "logits") and a unit
// (a channel number, or for the logits any class form: index, WordNet id or exact name).
import { resolveClass } from '../classes.js';
import type { Model } from '../model.js';
import type { Position, UnitObjective } from '../objectives.js';

export interface ResolvedTarget {
  objective: UnitObjective;
  /** Layer name as in the model, and the unit index. */
  layer: string;
  unit: number;
  /** Human label, e.g. "logits:130 flamingo" or "conv_pw_5_relu:17". */
  label: string;
}

export function isLogitsLayer(model: Model, layer: string): boolean {
  if (layer === 'logits' || layer === model.logitsLayer) return true;
  const l = model.layers.find((x) => x.display === layer);
  return l?.name === model.logitsLayer;
}

export function resolveTarget(model: Model, layer: string, unit: string | number, at?: Position): ResolvedTarget {
  if (isLogitsLayer(model, layer)) {
    const c = resolveClass(model.classes, unit, model.id);
    return { objective: { kind: 'class', index: c.index }, layer: model.logitsLayer, unit: c.index, label: `logits:${c.index} ${c.name.split(',')[0]}` };
  }
  const info = model.layer(layer);
  const u = typeof unit === 'number' ? unit : /^\d+$/.test(unit.trim()) ? Number(unit) : NaN;
  if (!Number.isInteger(u) || u < 0 || u >= info.units) {
    throw new Error(`unit "${unit}" is not a channel of ${info.display} (0…${info.units - 1})`);
  }
  return { objective: { kind: 'channel', layer: info.name, channel: u, at }, layer: info.name, unit: u, label: `${info.display}:${u}` };
}
