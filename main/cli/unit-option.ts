// `--unit` in every command takes the same forms as the window's search box (contract/units.ts):
// a class name, WordNet id or index of the logits layer, or `layer:unit`; with `--layer`, a plain
// number is that layer's channel.
import { resolveUnit, splitLayerUnit, findLayer, type NamedClass, type NamedLayer, type UnitRef } from '../../contract/units.js';
import { CliError, EXIT_BAD_INPUT, oneLine } from './common.js';

export interface UnitModel {
  id: string;
  layers: readonly NamedLayer[];
  logitsLayer: string | null;
  classes: readonly NamedClass[];
}

export const UNIT_HELP = 'unit: class name, WordNet id or class index (logits), or layer:unit (e.g. pw5:3); with --layer a channel number';

export function unitOption(model: UnitModel, layer: string | undefined, unit: string): UnitRef {
  try {
    const lu = splitLayerUnit(unit);
    if (lu) {
      const ref = resolveUnit(model, unit);
      if (layer !== undefined && findLayer(model.layers, layer)?.name !== ref.layer) throw new Error(`--unit ${unit} names another layer than --layer ${layer}`);
      return ref;
    }
    if (layer !== undefined) {
      const l = findLayer(model.layers, layer);
      const isLogits = layer === 'logits' || (l !== undefined && l.name === model.logitsLayer);
      if (!isLogits) {
        if (!l) throw new Error(`no layer "${layer}" in ${model.id} (layers: ${model.layers.map((x) => x.display).join(', ')})`);
        if (!/^\d+$/.test(unit.trim())) throw new Error(`--unit ${unit}: layer ${l.display} has channels 0…${l.units - 1}, not named classes`);
        return resolveUnit(model, `${l.name}:${unit.trim()}`);
      }
    }
    return resolveUnit(model, unit);
  } catch (e) {
    throw new CliError(oneLine(e).replace(/^unit /, '--unit '), EXIT_BAD_INPUT);
  }
}
