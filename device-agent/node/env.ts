/**
 * What a Node agent says about its machine: the `AgentEnv` of its hello, and the default device
 * key. The key is a hash of host facts, so every Node agent on one machine (started twice, or
 * with other runtimes) reports the same device and fills the same latency tables.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import type { AgentEnv } from '../../src/protocol/agent-protocol.ts';

/** Facts about the host that do not change between runs of the agent. */
export interface HostFacts {
  readonly hostname: string;
  readonly os: string;
  readonly arch: string;
  readonly cpuModel: string;
  readonly cores: number;
  /** Total memory, MiB. */
  readonly memoryMb: number;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max);
}

/** Reads the host facts from `node:os`. */
export function hostFacts(): HostFacts {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    os: os.platform(),
    arch: os.arch(),
    cpuModel: cpus[0]?.model.trim() || 'unknown',
    cores: Math.max(1, cpus.length || os.availableParallelism()),
    memoryMb: Math.max(1, Math.round(os.totalmem() / 2 ** 20)),
  };
}

/** The environment report of a Node agent (strings clipped to the protocol's bounds). */
export function nodeAgentEnv(facts: HostFacts = hostFacts()): AgentEnv {
  return {
    platform: 'node',
    os: clip(facts.os, 100),
    osRelease: clip(os.release(), 100),
    arch: clip(facts.arch, 50),
    cpuModel: clip(facts.cpuModel, 200),
    cores: Math.min(4096, facts.cores),
    memoryMb: facts.memoryMb,
    ...(facts.hostname ? { hostname: clip(facts.hostname, 255) } : {}),
    nodeVersion: clip(process.version, 50),
  };
}

/**
 * The default device key: sha256 (hex, first 32 characters) of the host facts. Stable across
 * restarts and identical for every agent on the machine; a new CPU, more memory or another
 * hostname makes it a new device, which is right, since its timings change too.
 */
export function defaultDeviceKey(facts: HostFacts = hostFacts()): string {
  const text = JSON.stringify([facts.hostname, facts.os, facts.arch, facts.cpuModel, facts.cores, facts.memoryMb]);
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
