/**
 * Threads of any engine, at most: one bound for every entry point (CLI flags, the daemon config,
 * the engines; the native planner refuses more, see src/kernels/check.h).
 */
export const MAX_THREADS = 64;
