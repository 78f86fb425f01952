/**
 * Grid refinement after a profile job: where a table's interpolation fails its leave-one-out
 * test (`src/cost/latency-refine.ts`: an interior grid line that its neighbours do not predict
 * within 5% and its own noise), the midpoints around it are measured by a follow-up job. One
 * round: a refinement job is not refined again.
 */
import { refinementPoints } from '../src/cost/latency-refine.ts';
import { withChannels, type OpSpec } from '../src/ops/op-spec.ts';
import type { JobView } from './contract/devices.ts';
import type { Fleet } from './fleet.ts';
import type { TableReader } from './tables.ts';

/** Channel counts of refinement points are multiples of this (SIMD-friendly, as the grid). */
const REFINE_MULTIPLE = 4;

/** Creates the follow-up job for `jobId` when it needs one; returns it, or null. */
export async function refineAfter(fleet: Fleet, tables: TableReader, jobId: string): Promise<JobView | null> {
  const job = await fleet.job(jobId);
  if (!job || job.kind !== 'profile' || job.state !== 'done') return null;
  if (!job.options.refine || job.options.refinementOf) return null;
  const templates = await fleet.jobSignatureSpecs(jobId);
  const stored = await tables.tables(job.deviceId, job.runtime);
  const specs: OpSpec[] = [];
  for (const t of stored) {
    const template = templates.get(t.signature);
    // Only full measured grids: filled cells are not measurements to test against.
    if (!template || !t.table || t.table.filled.length > 0) continue;
    for (const p of refinementPoints(t.table, { multiple: REFINE_MULTIPLE, maxPoints: 16 })) {
      try {
        specs.push(withChannels(template, p.cIn, p.cOut));
      } catch {
        // A channel count the kind does not allow (e.g. a depthwise multiple): skip the point.
      }
    }
  }
  if (specs.length === 0) return null;
  return fleet.createRefinementJob(job, specs);
}
