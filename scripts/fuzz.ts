/**
 * npm run fuzz -- [--minutes N] [--inputs N] [--only cfg,zqw] [--seed S] [--json FILE]
 *
 * Runs every decoder (cfg parser, .weights reader, .zqw reader, config loader, image loader) over
 * damaged inputs (test/fuzz/: the same properties `npm test` runs a few hundred times), each for at
 * least --inputs inputs (default 100,000) and its share of --minutes (default 0), two decoders at a
 * time in worker threads. A worker reports after every batch of 500 inputs; one that stays silent
 * for 120 s has hung and is ended. A violation (another exception, an accepted weight set the
 * native planner refuses or computes differently, a crash or running out of memory) prints
 * fast-check's report with the seed that reproduces it; the script then exits with 1.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import os from 'node:os';

interface Job {
  decoder: string;
  inputs: number;
  ms: number;
  seed: number;
}

interface Result {
  decoder: string;
  inputs: number;
  accepted: number;
  refused: Record<string, number>;
  seconds: number;
  failure?: string;
}

const BATCH = 500;
const SILENCE_MS = 120_000;

async function work(job: Job): Promise<void> {
  const { decoderProperty } = await import('../test/fuzz/run.js');
  const fc = (await import('fast-check')).default;
  const { property, tally } = await decoderProperty(job.decoder as never);
  const t0 = Date.now();
  for (let batch = 0; tally.inputs < job.inputs || Date.now() - t0 < job.ms; batch++) {
    const seed = job.seed + batch;
    const r = await fc.check(property as never, { numRuns: BATCH, seed });
    if (r.failed) {
      const why = r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance);
      parentPort!.postMessage({ type: 'failure', tally, failure: `seed ${seed}, ${BATCH} runs: ${why}\n${fc.defaultReportMessage(r) ?? ''}`.slice(0, 4000) });
      return;
    }
    parentPort!.postMessage({ type: 'progress', tally });
  }
  parentPort!.postMessage({ type: 'done', tally });
}

function runJob(job: Job): Promise<Result> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const worker = new Worker(new URL('./fuzz-worker.mjs', import.meta.url), {
      workerData: job,
      resourceLimits: { maxOldGenerationSizeMb: 2048 },
    });
    let tally = { inputs: 0, accepted: 0, refused: {} as Record<string, number> };
    let failure: string | undefined;
    let last = Date.now();
    const finish = (): void => {
      clearInterval(watchdog);
      resolve({ decoder: job.decoder, ...tally, seconds: (Date.now() - t0) / 1000, failure });
    };
    const watchdog = setInterval(() => {
      if (Date.now() - last > SILENCE_MS) {
        failure = `no progress for ${SILENCE_MS / 1000} s after ${tally.inputs} inputs (a hang; batch seed ${job.seed + Math.floor(tally.inputs / BATCH)})`;
        void worker.terminate();
      }
    }, 5000);
    worker.on('message', (m: { type: string; tally: typeof tally; failure?: string }) => {
      last = Date.now();
      tally = m.tally;
      if (m.type === 'failure') failure = m.failure;
      if (m.type === 'progress' && tally.inputs % 20_000 < BATCH) process.stderr.write(`${job.decoder}: ${tally.inputs} inputs\n`);
    });
    worker.on('error', (e) => (failure ??= `the worker died: ${e.message}`));
    worker.on('exit', (code) => {
      if (code !== 0 && !failure) failure = `the worker exited with ${code}`;
      finish();
    });
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def?: string): string | undefined => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const { DECODERS } = await import('../test/fuzz/run.js');
  const only = opt('only')?.split(',') ?? [...DECODERS];
  const minutes = Number(opt('minutes', '0'));
  const inputs = Number(opt('inputs', '100000'));
  const seed = Number(opt('seed', String(Date.now() % 1e9)));
  const parallel = Math.max(1, Math.min(2, os.availableParallelism()));
  const share = (minutes * 60_000 * parallel) / only.length;
  process.stderr.write(`fuzzing ${only.join(', ')}: at least ${inputs} inputs each${minutes ? `, ${minutes} min in all` : ''}, seed ${seed}\n`);
  const queue = only.map((decoder, k) => ({ decoder, inputs, ms: share, seed: seed + k * 1_000_000 }));
  const results: Result[] = [];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) results.push(await runJob(job));
    }),
  );
  results.sort((a, b) => only.indexOf(a.decoder) - only.indexOf(b.decoder));
  const rows = results.map((r) => {
    const refused = Object.values(r.refused).reduce((a, b) => a + b, 0);
    const codes = Object.entries(r.refused).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
    return `| ${r.decoder} | ${r.inputs} | ${r.accepted} | ${refused} | ${r.failure ? 1 : 0} | ${r.seconds.toFixed(0)} | ${codes} |`;
  });
  process.stdout.write(
    ['| decoder | inputs | accepted | refused | crashes | seconds | refusals by code |', '|---|---:|---:|---:|---:|---:|---|', ...rows].join('\n') + '\n',
  );
  for (const r of results) if (r.failure) process.stdout.write(`\n${r.decoder}: ${r.failure}\n`);
  const json = opt('json');
  if (json) writeFileSync(json, JSON.stringify({ seed, inputs, minutes, node: process.version, results }, null, 2) + '\n');
  process.exitCode = results.some((r) => r.failure) ? 1 : 0;
}

if (isMainThread) await main();
else await work(workerData as Job);
