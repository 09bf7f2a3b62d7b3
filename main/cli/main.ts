// The `deepvis` command line (run through bin/deepvis.mjs). One module per command; the shared
// options, model lookup and output rules live in common.ts.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { BACKEND_ORDER } from '../engine/index.js';
import { classCommand } from './class.js';
import { classifyCommand } from './classify.js';
import { explainCommand } from './explain.js';
import { CliError, EXIT_BAD_INPUT, EXIT_FAILURE, hostConfig, oneLine, warn } from './common.js';
import { modelsCommand } from './models.js';
import { initCommand } from './init.js';
import { indexCommand } from './index-cmd.js';
import { topCommand } from './top.js';
import { synthCommand } from './synth.js';
import { atlasCommand } from './atlas.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(): Command {
  const program = new Command('deepvis')
    .description('Look inside ImageNet CNNs from the command line.')
    .version(version())
    .addOption(
      new Option('--backend <name>', 'TensorFlow.js backend (default: $DEEPVIS_BACKEND, else the first that starts)').choices([
        ...BACKEND_ORDER,
      ]),
    )
    .option('--models-dir <dir>', 'a folder of models to add to the bundled ones ($DEEPVIS_MODELS_DIR, else models/)')
    .option('-v, --verbose', 'report the backend, load and run times on stderr')
    // Commander errors become one line "deepvis: …" and exit code 2; help and --version exit 0.
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => write(`deepvis: ${str.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')}\n`),
    })
    .showSuggestionAfterError(true);
  // Subcommands inherit exitOverride/configureOutput when added after them.
  for (const make of [classifyCommand, modelsCommand, classCommand, synthCommand, atlasCommand, indexCommand, topCommand, explainCommand, initCommand]) {
    const cmd = make();
    cmd.copyInheritedSettings(program);
    program.addCommand(cmd);
  }
  return program;
}

const USER_PATH_ERRORS = new Set(['EEXIST', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'EROFS']);

export async function main(argv: string[]): Promise<number> {
  process.exitCode = 0;
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Already printed by commander (help, version or a usage error).
      return e.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
    }
    warn(oneLine(e));
    if (hostConfig().debug && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
    if (e instanceof CliError) return e.exitCode;
    // A path the user gave that is in the way (a file where a folder goes, a read-only folder) is bad input.
    return USER_PATH_ERRORS.has((e as NodeJS.ErrnoException)?.code ?? '') ? EXIT_BAD_INPUT : EXIT_FAILURE;
  }
}

// A closed pipe (`deepvis models --json | head -c 100`) is the reader's choice, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  warn(`cannot write the output: ${oneLine(e)}`);
  process.exit(EXIT_FAILURE);
});

const code = await main(process.argv.slice(2));
// Exit explicitly: stdout is already flushed, and a backend may keep handles open.
process.exit(code);
