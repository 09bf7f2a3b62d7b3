// deepvis models [--json]: the models in the models folder. Installed ones are loaded once to
// measure their layers; a model whose weights are missing (or fail to load) is listed with
// installed:false and the reason, never a crash.
import { delimiter } from 'node:path';
import { Command } from 'commander';
import { DEFAULT_MODEL_ID, listModels, type ClassInfo, type ModelEntry } from '../engine/index.js';
import { globals, modelsDirOf, oneLine, openModel, out, outJson, readModelClasses, startBackend, warn } from './common.js';

export interface ModelListing {
  id: string;
  title: string;
  installed: boolean;
  /** Why the model cannot be used, or null. */
  problem: string | null;
  /** What kind of problem: files missing, damaged, unreadable, or a layer/op not supported yet. */
  fault: 'missing' | 'corrupt' | 'invalid' | 'unsupported' | null;
  /** For a folder without deepvis.json: what was inferred, one note each (null: read from deepvis.json). */
  inferred: string[] | null;
  /** The folder of a same-id model in an earlier models folder that this one replaces, or null. */
  overrides: string | null;
  /** Whether the model's head ends in softmax; when false, probabilities are a softmax DeepVis applies (null: not loaded). */
  softmaxHead: boolean | null;
  inputSize: [number, number] | null;
  /** How the class indices are ordered (from the descriptor), e.g. Keras or Darknet order. */
  classOrder: string | null;
  /** Name of the logits layer. */
  logits: string | null;
  /** Displayed layers; shape and units are null when the model could not be loaded. */
  layers: Array<{ name: string; display: string; shape: [number, number, number] | null; units: number | null }>;
  /** The model's classes in its own order. */
  classes: ClassInfo[];
}

export interface ModelsOutput {
  /** The TF.js backend used to load the installed models (absent when none was started). */
  backend?: string;
  models: ModelListing[];
}

/** A listing from the descriptor and class files alone (used when the model cannot be loaded). */
async function staticListing(e: ModelEntry, problem: string | null, installed: boolean, fault: ModelListing['fault'] = problem ? (e.fault ?? 'invalid') : null): Promise<ModelListing> {
  const d = e.descriptor;
  let classes: ClassInfo[] = [];
  if (d) {
    try {
      classes = await readModelClasses(e);
    } catch (err) {
      problem = problem ?? oneLine(err);
    }
  }
  return {
    id: e.id,
    title: d?.title ?? e.id,
    installed,
    problem,
    fault: problem ? fault : null,
    inferred: e.inferred ?? null,
    overrides: e.overrides ?? null,
    softmaxHead: null,
    inputSize: d ? [d.inputSize[0], d.inputSize[1]] : null,
    classOrder: d?.classes?.order ?? null,
    logits: d?.logits ?? null,
    layers: d ? d.layers.map((l) => ({ name: l.name, display: l.display, shape: null, units: null })) : [],
    classes,
  };
}

export async function collectModels(cmd: Command): Promise<ModelsOutput> {
  const g = globals(cmd);
  const dir = modelsDirOf(g);
  const entries = await listModels(dir);
  const output: ModelsOutput = { backend: undefined, models: [] }; // backend first in the JSON
  let backendProblem: string | null = null;
  for (const e of entries) {
    if (e.problem || !e.descriptor) {
      output.models.push(await staticListing(e, e.problem ?? 'invalid descriptor', false));
      continue;
    }
    if (!output.backend && !backendProblem) {
      try {
        output.backend = (await startBackend(g)).backend;
      } catch (err) {
        backendProblem = oneLine(err);
        warn(`cannot measure layers: ${backendProblem}`);
      }
    }
    if (backendProblem) {
      // Files are present; only the backend is missing, so the model counts as installed.
      output.models.push(await staticListing(e, null, true));
      continue;
    }
    try {
      const m = await openModel(e, dir);
      try {
        output.models.push({
          id: m.id,
          title: m.descriptor.title,
          installed: true,
          problem: null,
          fault: null,
          inferred: e.inferred ?? null,
          overrides: e.overrides ?? null,
          softmaxHead: m.softmaxHead,
          inputSize: [m.inputSize[0], m.inputSize[1]],
          classOrder: m.descriptor.classes?.order ?? null,
          logits: m.logitsLayer,
          layers: m.layers.map((l) => ({ name: l.name, display: l.display, shape: l.shape, units: l.units })),
          classes: m.classes.map((c) => ({ index: c.index, wnid: c.wnid, name: c.name })),
        });
      } finally {
        m.dispose();
      }
    } catch (err) {
      output.models.push(await staticListing(e, oneLine(err), false, /not supported|cannot compile/.test(oneLine(err)) ? 'unsupported' : 'invalid'));
    }
  }
  return output;
}

/** What the listing calls a model it cannot use: only absent files make it "not installed". */
const FAULT_LABEL = { missing: 'NOT INSTALLED', corrupt: 'DAMAGED', invalid: 'CANNOT BE READ', unsupported: 'NOT SUPPORTED' } as const;

function readable(o: ModelsOutput, dir: string): string {
  const dirs = dir.split(delimiter).join(', ');
  if (o.models.length === 0) return `no models in ${dirs} — run \`npm run fetch-models\`, or put a model folder (model.json + weights) there\n`;
  const lines: string[] = [`models in ${dirs}` + (o.backend ? ` (measured on backend ${o.backend})` : '')];
  for (const m of o.models) {
    lines.push('', `${m.id}${m.id === DEFAULT_MODEL_ID ? ' (default)' : ''} — ${m.title}`);
    if (!m.installed) lines.push(`  ${FAULT_LABEL[m.fault ?? 'invalid']}: ${m.problem}`);
    if (m.overrides) lines.push(`  replaces the model of the same id in ${m.overrides}`);
    if (m.inferred) lines.push(`  no deepvis.json — inferred (\`deepvis init\` writes it down to edit):`, ...m.inferred.map((n) => `    - ${n}`));
    else if (m.softmaxHead === false) lines.push(`  the head has no softmax: probabilities shown are a softmax of ${m.logits}'s outputs`);
    const order = m.classes.length ? `${m.classes.length} classes${m.classOrder ? `, order: ${m.classOrder}` : ''}` : 'no classes';
    lines.push(`  input ${m.inputSize ? m.inputSize.join('×') : '?'}, ${order}, logits layer ${m.logits ?? '?'}`);
    const layers = m.layers.map((l) => (l.shape ? `${l.display} ${l.shape.join('×')}` : l.display));
    if (layers.length) lines.push(`  layers: ${layers.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

export function modelsCommand(): Command {
  return new Command('models')
    .description('list the installed models, their layers and classes')
    .option('--json', 'print one JSON object {backend?, models:[{id, title, installed, problem, inputSize, logits, layers, classes}]}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const o = await collectModels(cmd);
      await (opts.json ? outJson(o) : out(readable(o, modelsDirOf(globals(cmd)))));
    });
}
