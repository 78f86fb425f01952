/**
 * Types for the `cookie` package (0.7, the version express depends on), which ships none; only
 * what server/auth.ts uses.
 */
declare module 'cookie' {
  export interface ParseOptions {
    /** Decodes a cookie value. Default `decodeURIComponent`, leaving values it cannot decode as they are. */
    decode?(value: string): string;
  }
  /** The cookies of a `Cookie` header, by name; of several cookies with one name, the first. */
  export function parse(header: string, options?: ParseOptions): Record<string, string | undefined>;
}
