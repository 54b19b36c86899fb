// Worker entry of scripts/fuzz.ts: TypeScript support in this thread, then the script's worker half.
import { register } from 'tsx/esm/api';
register();
await import('./fuzz.ts');
