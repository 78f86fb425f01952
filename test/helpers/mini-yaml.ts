/**
 * A strict parser for the block-style YAML subset that deploy/compose.yaml is written in (no YAML
 * package is installed): nested mappings, block sequences, flow sequences of scalars (`[a, "b"]`),
 * the empty flow mapping `{}`, plain, single- and double-quoted scalars, comments. Anything else
 * (anchors, aliases, tags, block scalars, flow mappings with content, several documents, tabs,
 * duplicate keys, odd indentation) is an error naming the line, so a file that parses here is
 * one that any YAML parser reads the same way.
 */

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  readonly no: number;
  readonly indent: number;
  readonly text: string;
}

class YamlError extends Error {
  constructor(no: number, message: string) {
    super(`line ${no}: ${message}`);
    this.name = 'YamlError';
  }
}

/** Strips a comment (a `#` at the start or after whitespace, outside quotes). */
function stripComment(raw: string, no: number): string {
  let quote: string | null = null;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || raw[i - 1] === ' ')) {
      return raw.slice(0, i).trimEnd();
    }
  }
  if (quote) throw new YamlError(no, 'unterminated quoted string');
  return raw.trimEnd();
}

function scalar(text: string, no: number): YamlValue {
  const t = text.trim();
  if (t === '') return null;
  if (/^[&*!|>%@`]/.test(t)) throw new YamlError(no, `unsupported YAML (anchor, alias, tag, block scalar or reserved character): ${t}`);
  if (t.startsWith('"')) {
    if (!/^"(?:[^"\\]|\\.)*"$/.test(t)) throw new YamlError(no, `malformed double-quoted string: ${t}`);
    return JSON.parse(t) as string;
  }
  if (t.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(t)) throw new YamlError(no, `malformed single-quoted string: ${t}`);
    return t.slice(1, -1).replace(/''/g, "'");
  }
  if (t.startsWith('[')) return flowSequence(t, no);
  if (t.startsWith('{')) {
    if (t === '{}') return {};
    throw new YamlError(no, `flow mappings with content are not supported: ${t}`);
  }
  if (/: |:$/.test(t) || t.startsWith('- ') || t.includes(' #')) throw new YamlError(no, `ambiguous plain scalar: ${t}`);
  if (t === 'true' || t === 'false') return t === 'true';
  if (t === 'null' || t === '~') return null;
  if (/^[-+]?\d+$/.test(t)) return Number(t);
  if (/^(?:yes|no|on|off|y|n)$/i.test(t)) throw new YamlError(no, `"${t}" means a boolean to YAML 1.1 parsers and a string to YAML 1.2 ones: quote it`);
  return t;
}

function flowSequence(t: string, no: number): YamlValue[] {
  if (!t.endsWith(']')) throw new YamlError(no, `unterminated flow sequence: ${t}`);
  const body = t.slice(1, -1).trim();
  if (body === '') return [];
  const items: string[] = [];
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') throw new YamlError(no, 'nested flow collections are not supported');
    else if (c === ',') {
      items.push(body.slice(start, i));
      start = i + 1;
    }
  }
  items.push(body.slice(start));
  return items.map((s) => {
    if (s.trim() === '') throw new YamlError(no, `empty item in a flow sequence: ${t}`);
    return scalar(s, no);
  });
}

/** Splits `key: rest` (the key plain or quoted); null when the line is not a mapping entry. */
function splitKey(text: string, no: number): { key: string; rest: string } | null {
  const quoted = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s+(.*))?$/.exec(text);
  if (quoted) return { key: scalar(quoted[1], no) as string, rest: quoted[2] ?? '' };
  const plain = /^([^\s"'#[\]{},&*!|>%@`-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?:\s+(.*))?$/.exec(text);
  if (plain) return { key: plain[1], rest: plain[2] ?? '' };
  return null;
}

function parseBlock(lines: readonly Line[], start: number, indent: number): { value: YamlValue; next: number } {
  const first = lines[start];
  if (first.text.startsWith('- ') || first.text === '-') {
    const out: YamlValue[] = [];
    let i = start;
    while (i < lines.length && lines[i].indent === indent && (lines[i].text.startsWith('- ') || lines[i].text === '-')) {
      const rest = lines[i].text.slice(1).trim();
      if (rest === '') {
        if (i + 1 >= lines.length || lines[i + 1].indent <= indent) throw new YamlError(lines[i].no, 'empty sequence item');
        const r = parseBlock(lines, i + 1, lines[i + 1].indent);
        out.push(r.value);
        i = r.next;
      } else {
        if (splitKey(rest, lines[i].no)) throw new YamlError(lines[i].no, 'mappings inside sequence items are not supported');
        out.push(scalar(rest, lines[i].no));
        i++;
      }
    }
    if (i < lines.length && lines[i].indent > indent) throw new YamlError(lines[i].no, 'unexpected indentation');
    return { value: out, next: i };
  }
  const out: { [key: string]: YamlValue } = {};
  let i = start;
  while (i < lines.length && lines[i].indent === indent) {
    const line = lines[i];
    if (line.text.startsWith('- ')) throw new YamlError(line.no, 'a sequence item where a mapping key was expected');
    const kv = splitKey(line.text, line.no);
    if (!kv) throw new YamlError(line.no, `expected "key: value", got ${line.text}`);
    if (Object.hasOwn(out, kv.key)) throw new YamlError(line.no, `duplicate key ${kv.key}`);
    if (kv.rest !== '') {
      out[kv.key] = scalar(kv.rest, line.no);
      i++;
      continue;
    }
    const child = lines[i + 1];
    // A block sequence may sit at the same indentation as its key (compose files often do).
    if (child && (child.indent > indent || (child.indent === indent && child.text.startsWith('- ')))) {
      const r = parseBlock(lines, i + 1, child.indent);
      out[kv.key] = r.value;
      i = r.next;
    } else {
      out[kv.key] = null;
      i++;
    }
  }
  if (i < lines.length && lines[i].indent > indent) throw new YamlError(lines[i].no, 'unexpected indentation');
  return { value: out, next: i };
}

/** Parses the subset (see the file comment). @throws Error naming the line of anything else. */
export function parseYaml(text: string): YamlValue {
  const lines: Line[] = [];
  text.split('\n').forEach((raw, k) => {
    const no = k + 1;
    if (/^\s*\t/.test(raw)) throw new YamlError(no, 'tab indentation');
    const body = stripComment(raw, no);
    if (body.trim() === '') return;
    if (body.trim() === '---' || body.trim() === '...') throw new YamlError(no, 'document markers (several documents) are not supported');
    const indent = body.length - body.trimStart().length;
    lines.push({ no, indent, text: body.trim() });
  });
  if (lines.length === 0) return null;
  if (lines[0].indent !== 0) throw new YamlError(lines[0].no, 'the document must start at column 0');
  const r = parseBlock(lines, 0, 0);
  if (r.next < lines.length) throw new YamlError(lines[r.next].no, 'unexpected content after the document');
  return r.value;
}
