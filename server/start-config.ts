/**
 * Start-up checks of `startServer` options that are not about who may do what (server/auth.ts):
 * the public URL behind a proxy, and secrets copied unchanged from an example file.
 */
import { MorphError } from '../src/errors.ts';

/**
 * Values of the example environment files (deploy/) start with this. A server refuses them: a
 * copy-paste deployment would otherwise run with credentials anyone can read on GitHub.
 */
const PLACEHOLDER_SECRET = /^change[-_ ]?me/i;

/**
 * @throws MorphError MORPH_ERR_CONFIG when `value` is a placeholder (`change-me…`) rather than a secret.
 */
export function refusePlaceholderSecret(value: string, what: string, howToSet: string): void {
  if (PLACEHOLDER_SECRET.test(value.trim())) {
    throw new MorphError(
      'MORPH_ERR_CONFIG',
      `the ${what} is a placeholder from an example file ("change-me…"), not a secret; set ${howToSet} to a long random value, e.g. from: node -e "console.log(require('crypto').randomBytes(24).toString('base64url'))"`,
    );
  }
}

/**
 * The origin (`https://host[:port]`, no trailing slash) of a public URL such as
 * `https://morphnet.example.org/`, or null for none (undefined, null or '').
 * @throws MorphError MORPH_ERR_CONFIG for anything but an absolute http(s) URL without a path
 *   (other than `/`), query, fragment or credentials: the server's links are absolute paths.
 */
export function publicOrigin(value: string | null | undefined, source: string): string | null {
  if (value === undefined || value === null || value.trim() === '') return null;
  const raw = value.trim();
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MorphError('MORPH_ERR_CONFIG', `${source} ${JSON.stringify(raw)} is not a URL; give the address clients use, e.g. https://morphnet.example.org`);
  }
  const problems: string[] = [];
  if (url.protocol !== 'https:' && url.protocol !== 'http:') problems.push(`its scheme is ${url.protocol.slice(0, -1)}, not https or http`);
  if (url.username !== '' || url.password !== '') problems.push('it holds credentials');
  if (url.pathname !== '/') problems.push(`it has the path ${url.pathname} (the server cannot live under a path prefix)`);
  if (url.search !== '' || url.hash !== '') problems.push('it has a query or fragment');
  if (problems.length > 0) {
    throw new MorphError('MORPH_ERR_CONFIG', `${source} ${JSON.stringify(raw)} is refused: ${problems.join('; ')}; give only the scheme and host, e.g. https://morphnet.example.org`);
  }
  return url.origin;
}
