// internlm: the command-line face of the engine (and our debugging tool). One subcommand per job;
// see USAGE in cli/args.ts. Mistakes in the call exit with 2 and the usage, failures with 1,
// an interrupted generation with 130 (as shells report Ctrl-C).
import { USAGE, UsageError } from './cli/args';
import { benchCommand } from './cli/commands/bench';
import { chatCommand } from './cli/commands/chat';
import { evalCommand } from './cli/commands/evaluate';
import { generateCommand } from './cli/commands/generate';
import { infoCommand } from './cli/commands/info';
import { planCommand } from './cli/commands/plan';
import { quantizeCommand } from './cli/commands/quantize';
import { tokenizeCommand } from './cli/commands/tokenize';

// A command resolves with its exit code when it is not 0 (e.g. 130 after Ctrl-C).
const COMMANDS = new Map<string, (args: string[]) => Promise<number | void>>([
  ['info', infoCommand],
  ['tokenize', tokenizeCommand],
  ['eval', evalCommand],
  ['generate', generateCommand],
  ['chat', chatCommand],
  ['bench', benchCommand],
  ['plan', planCommand],
  ['quantize', quantizeCommand],
]);

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === 'help' || argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (name === undefined) throw new UsageError('missing command');
  const command = COMMANDS.get(name);
  if (!command) throw new UsageError(`unknown command '${name}'`);
  return (await command(args)) ?? 0;
}

// A reader that goes away (`internlm generate … | head`) ends the output, not with a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`internlm: ${error.message}\n\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`internlm: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
