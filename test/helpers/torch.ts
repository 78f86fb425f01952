/**
 * The torch engine for tests. CI installs python3-torch (.ci/run) and sets MORPHNET_REQUIRE_TORCH=1,
 * so there a missing torch fails the suite; on a contributor's machine without torch the torch
 * tests are skipped with the reason instead.
 */
import type { TestContext } from 'node:test';
import { MorphError } from '../../src/errors.ts';
import { startTorchEngine, type TorchEngine, type TorchEngineOptions } from '../../src/train/torch/torch-engine.ts';

let probe: Promise<string | null> | undefined;

/** Null when torch can be started here, else why not. */
export function torchUnavailable(): Promise<string | null> {
  probe ??= (async () => {
    try {
      const e = await startTorchEngine({ threads: 1 });
      await e.close();
      return null;
    } catch (err) {
      if (err instanceof MorphError) return err.message.split('\n')[0];
      throw err;
    }
  })();
  return probe;
}

/** A started torch engine, or null after marking the test skipped (or failing it on CI). */
export async function torchOrSkip(t: TestContext, o: TorchEngineOptions = {}): Promise<TorchEngine | null> {
  const why = await torchUnavailable();
  if (why !== null) {
    if (process.env.MORPHNET_REQUIRE_TORCH === '1') throw new Error(`torch is required here (MORPHNET_REQUIRE_TORCH=1) but: ${why}`);
    t.skip(`torch not available: ${why}`);
    return null;
  }
  return startTorchEngine({ threads: 2, device: 'cpu', ...o });
}
