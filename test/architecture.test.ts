/**
 * The layers import one way (DESIGN.md, "Layout"; README.md, "Layout"):
 *
 *   cli/ (the `morphnet` bin, composition root) ──▶ server/, device-agent/ ──▶ src/ (the library)
 *
 * The library imports none of the edges, not even dynamically; `server/` and `device-agent/` do not
 * import the CLI or each other; within `src/` the concept folders (graph, cost, morph, ops, export,
 * …) depend one way; and the project's own modules form no import cycle. Read from the sources with
 * the TypeScript parser: nothing is loaded or run, so the result does not depend on this machine.
 * Starting a process is not an import: the server's built-in local agent runs `cli/bin.js agent`
 * as a child (server/local-agent.ts), the very command a user runs on a device.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const LAYERS = ['src', 'server', 'device-agent', 'cli'] as const;
const EDGES = ['server', 'device-agent', 'cli'] as const;

/**
 * Cycles still allowed, each as `findCycles` reports it: its modules (or src/ folders) in cycle
 * order from the smallest path, joined by ' → '. Empty; add one only with an issue to remove it.
 */
const ALLOWED_CYCLES: readonly string[] = [];

interface Import {
  /** Root-relative path of the imported file, with `/` separators. */
  readonly target: string;
  /** `import type …`, `export type … from`, every named binding `type`, or `import('…')` in a type. */
  readonly typeOnly: boolean;
  readonly dynamic: boolean;
  readonly line: number;
}

/** The source files (TypeScript and JavaScript) under `dir`, root-relative, sorted. */
function sourceFiles(dir: string): string[] {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|tsx|mts|js|mjs|cjs)$/.test(f) && !f.endsWith('.d.ts') && !f.split(sep).includes('node_modules'))
    .map((f) => join(dir, f).split(sep).join('/'))
    .filter((f) => statSync(join(ROOT, f)).isFile())
    .sort();
}

/** A relative specifier resolved to a root-relative file path; bare (package) specifiers give null. */
function resolveSpecifier(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const abs = resolve(ROOT, dirname(from), spec);
  const candidates = [abs, abs.replace(/\.js$/, '.ts'), `${abs}.ts`, join(abs, 'index.ts')];
  const hit = candidates.find((c) => existsSync(c) && statSync(c).isFile()) ?? abs;
  return relative(ROOT, hit).split(sep).join('/');
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Import[] = [];
  const add = (spec: ts.Expression | undefined, typeOnly: boolean, dynamic: boolean, node: ts.Node): void => {
    if (!spec || !ts.isStringLiteralLike(spec)) return;
    const target = resolveSpecifier(file, spec.text);
    if (target === null) return;
    out.push({ target, typeOnly, dynamic, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const c = node.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
      const allTypes = c !== undefined && !c.name && named !== undefined && named.length > 0 && named.every((e) => e.isTypeOnly);
      add(node.moduleSpecifier, Boolean(c?.isTypeOnly) || allTypes, false, node);
    } else if (ts.isExportDeclaration(node)) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : undefined;
      const allTypes = named !== undefined && named.length > 0 && named.every((e) => e.isTypeOnly);
      add(node.moduleSpecifier, node.isTypeOnly || allTypes, false, node);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false, true, node);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal as ts.Expression, true, false, node); // `import('…').T` in a type
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly, false, node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

const layerOf = (path: string): string => path.split('/')[0];

/** `src/graph/parse.ts` → `src/graph`; `src/errors.ts` → `src/errors`; outside src/, the layer. */
const srcFolderOf = (path: string): string => (layerOf(path) === 'src' ? path.split('/').slice(0, 2).join('/').replace(/\.ts$/, '') : layerOf(path));

/** One knot of mutually dependent nodes: a shortest loop through its smallest node, and all its nodes. */
interface Cycle {
  /** `a → b → … → a`, from the component's smallest node. */
  readonly loop: string;
  readonly component: readonly string[];
}

/**
 * The strongly connected components of a directed graph with more than one node (or a self-loop),
 * found with Tarjan's algorithm, each with a shortest loop through its smallest node.
 */
function findCycles(nodes: readonly string[], next: (node: string) => readonly string[]): Cycle[] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || next(v).includes(v)) components.push(component.sort());
  };
  for (const n of nodes) if (!index.has(n)) connect(n);
  return components.map((component) => ({ loop: [...shortestLoop(component, next), component[0]].join(' → '), component }));
}

/** Breadth-first from the component's smallest node, inside the component, back to itself. */
function shortestLoop(component: readonly string[], next: (node: string) => readonly string[]): string[] {
  const inside = new Set(component);
  const start = component[0];
  const prev = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    for (const w of next(queue[i])) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const loop = [queue[i]];
        while (loop[0] !== start) loop.unshift(prev.get(loop[0])!);
        return loop;
      }
      if (!prev.has(w)) {
        prev.set(w, queue[i]);
        queue.push(w);
      }
    }
  }
  return [...component];
}

/**
 * Module-level edges that run when the code runs. Type-only imports are left out: TypeScript erases
 * them, so they order no module evaluation and cannot leave a module half-initialised (a loop made
 * of type imports alone is harmless). A dynamic `import()` counts: it still ties the modules.
 */
function runtimeNext(graph: ReadonlyMap<string, readonly Import[]>): (file: string) => string[] {
  return (file) => [...new Set((graph.get(file) ?? []).filter((i) => !i.typeOnly && graph.has(i.target)).map((i) => i.target))];
}

/** Edges between src/ concept folders, type-only imports included: naming a folder's types depends on it too. */
function folderNext(graph: ReadonlyMap<string, readonly Import[]>): (folder: string) => string[] {
  const edges = new Map<string, Set<string>>();
  for (const [file, imports] of graph) {
    if (layerOf(file) !== 'src') continue;
    const from = srcFolderOf(file);
    for (const i of imports) {
      const to = srcFolderOf(i.target);
      if (layerOf(i.target) === 'src' && to !== from) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    }
  }
  return (folder) => [...(edges.get(folder) ?? [])];
}

/** Every import from a file of `fromLayers` into a file of `forbidden`, as `file:line imports target`. */
function violations(graph: ReadonlyMap<string, readonly Import[]>, fromLayers: readonly string[], forbidden: readonly string[]): string[] {
  return [...graph].filter(([file]) => fromLayers.includes(layerOf(file))).flatMap(([file, imports]) =>
    imports.filter((i) => forbidden.includes(layerOf(i.target))).map((i) => `${file}:${i.line} imports ${i.target}${i.dynamic ? ' (dynamically)' : ''}`),
  );
}

function assertNoNewCycles(cycles: readonly Cycle[], what: string): void {
  const fresh = cycles.filter((c) => !ALLOWED_CYCLES.includes(c.loop));
  const knots = fresh.map((c) => `${c.loop}\n  (all of: ${c.component.join(', ')})`).join('\n');
  assert.deepEqual(fresh.map((c) => c.loop), [], `import cycles among ${what}:\n${knots}`);
}

describe('architecture: the layers import one way', () => {
  const files = LAYERS.flatMap((l) => sourceFiles(l));
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it('reads the project: every layer has files and every relative import resolves to one', () => {
    for (const l of LAYERS) assert.ok(files.some((f) => layerOf(f) === l), `no source files under ${l}/`);
    const unresolved = [...graph].flatMap(([f, imports]) => imports.filter((i) => !existsSync(join(ROOT, i.target))).map((i) => `${f}:${i.line} → ${i.target}`));
    assert.deepEqual(unresolved, []);
  });

  it('src/ imports nothing from server/, device-agent/ or cli/ (static, dynamic, type or re-export)', () => {
    assert.deepEqual(violations(graph, ['src'], EDGES), []);
  });

  it('server/ and device-agent/ import neither cli/ nor each other', () => {
    assert.deepEqual(violations(graph, ['server'], ['cli', 'device-agent']), []);
    assert.deepEqual(violations(graph, ['device-agent'], ['cli', 'server']), []);
  });

  it('no import cycle among the modules of src/, server/, device-agent/ and cli/ (type-only imports aside)', () => {
    assertNoNewCycles(findCycles(files, runtimeNext(graph)), 'modules');
  });

  it('no cycle among the concept folders of src/ (graph, cost, morph, ops, export, ...), type imports included', () => {
    const folders = [...new Set(files.filter((f) => layerOf(f) === 'src').map(srcFolderOf))].sort();
    assertNoNewCycles(findCycles(folders, folderNext(graph)), 'src/ folders');
  });

  it('every allowed cycle still exists (drop the ones that are gone)', () => {
    const folders = [...new Set(files.filter((f) => layerOf(f) === 'src').map(srcFolderOf))].sort();
    const found = [...findCycles(files, runtimeNext(graph)), ...findCycles(folders, folderNext(graph))].map((c) => c.loop);
    assert.deepEqual(ALLOWED_CYCLES.filter((c) => !found.includes(c)), []);
  });

  it('the checks catch what they forbid (on a made-up graph)', () => {
    const imp = (target: string, more: Partial<Import> = {}): Import => ({ target, typeOnly: false, dynamic: false, line: 1, ...more });
    const fake = new Map<string, Import[]>([
      ['src/a/one.ts', [imp('src/b/two.ts')]],
      ['src/b/two.ts', [imp('src/a/one.ts', { dynamic: true, line: 3 }), imp('cli/main.ts', { typeOnly: true, line: 4 })]],
      ['src/b/three.ts', [imp('src/a/one.ts', { typeOnly: true })]],
      ['src/a/four.ts', [imp('src/b/three.ts')]],
      ['server/x.ts', [imp('device-agent/y.ts', { dynamic: true, line: 7 })]],
      ['cli/main.ts', [imp('server/x.ts')]],
    ]);
    const nodes = [...fake.keys()];
    // The dynamic import closes a loop; the type-only one does not (three → one → … never returns).
    assert.deepEqual(findCycles(nodes, runtimeNext(fake)), [{ loop: 'src/a/one.ts → src/b/two.ts → src/a/one.ts', component: ['src/a/one.ts', 'src/b/two.ts'] }]);
    assert.deepEqual(findCycles(['src/a', 'src/b'], folderNext(fake)).map((c) => c.loop), ['src/a → src/b → src/a']);
    assert.deepEqual(violations(fake, ['src'], EDGES), ['src/b/two.ts:4 imports cli/main.ts']);
    assert.deepEqual(violations(fake, ['server'], ['cli', 'device-agent']), ['server/x.ts:7 imports device-agent/y.ts (dynamically)']);
  });
});
