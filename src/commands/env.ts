import type { Command } from 'commander';
import { dataDir } from '../util/paths.js';

/** `zeroq env`: where zeroq looks for things, for bug reports. */
export function register(program: Command): void {
  program
    .command('env')
    .description('print the data folder, Node version and platform')
    .action(() => {
      process.stdout.write(
        JSON.stringify({ data: dataDir(), node: process.version, platform: process.platform, arch: process.arch }, null, 2) + '\n',
      );
    });
}
