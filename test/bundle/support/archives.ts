// Archive writers for the tests: tar (ustar, with pax for long names) and zip
// (stored or deflate, Unix modes in the external attributes), written by hand
// so a test can make any entry, including the hostile ones real tools refuse
// to produce. Nothing here depends on tar, zip or gzip binaries.
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';

/** One tar member; `type` is the typeflag ('0' file, '1' hardlink, '2' symlink, '3' char dev, '5' dir, '6' fifo...). */
export interface TarSpec {
  name: string;
  type?: string;
  data?: Buffer;
  mode?: number;
  linkname?: string;
  /** Extra pax records for this member (e.g. { path: '...' }). */
  pax?: Record<string, string>;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function writeString(buf: Buffer, offset: number, width: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > width) throw new Error(`tar field too long: ${text}`);
  bytes.copy(buf, offset);
}

function makeHeader({ name, type, size, mode, linkname = '', prefix = '' }: { name: string; type: string; size: number; mode: number; linkname?: string; prefix?: string }): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, name);
  writeString(h, 100, 8, octal(mode, 8));
  writeString(h, 108, 8, octal(0, 8));
  writeString(h, 116, 8, octal(0, 8));
  writeString(h, 124, 12, octal(size, 12));
  writeString(h, 136, 12, octal(1_700_000_000, 12));
  h.fill(0x20, 148, 156);
  writeString(h, 156, 1, type);
  writeString(h, 157, 100, linkname);
  writeString(h, 257, 6, 'ustar\0');
  writeString(h, 263, 2, '00');
  writeString(h, 265, 32, 'root');
  writeString(h, 297, 32, 'root');
  writeString(h, 329, 8, octal(0, 8));
  writeString(h, 337, 8, octal(0, 8));
  writeString(h, 345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  writeString(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

function padded(data: Buffer): Buffer[] {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return pad === 0 ? [data] : [data, Buffer.alloc(pad)];
}

/** A pax record: "LEN key=value\n", LEN counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** The end of `text` that fits in maxBytes of UTF-8, whole characters only (the ustar name field behind a pax path). */
function utf8Tail(text: string, maxBytes: number): string {
  const chars = [...text];
  let bytes = 0;
  let start = chars.length;
  while (start > 0 && bytes + Buffer.byteLength(chars[start - 1]) <= maxBytes) bytes += Buffer.byteLength(chars[--start]);
  return chars.slice(start).join('');
}

/** A tar archive of the given members, ended by two zero blocks unless `end` is false. */
export function makeTar(specs: readonly TarSpec[], { end = true } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const spec of specs) {
    const type = spec.type ?? '0';
    const data = spec.data ?? Buffer.alloc(0);
    const pax: Record<string, string> = { ...spec.pax };
    let name = spec.name;
    if (Buffer.byteLength(name) > 100) {
      pax.path = name;
      name = utf8Tail(name, 90);
    }
    if (Object.keys(pax).length > 0) {
      const body = Buffer.from(Object.entries(pax).map(([k, v]) => paxRecord(k, v)).join(''));
      parts.push(makeHeader({ name: 'PaxHeader', type: 'x', size: body.length, mode: 0o644 }), ...padded(body));
    }
    const size = type === '0' || type === '' || type === '7' || type === 'S' ? data.length : 0;
    const mode = spec.mode ?? (type === '5' ? 0o755 : type === '2' ? 0o777 : 0o644);
    parts.push(makeHeader({ name, type, size, mode, linkname: spec.linkname }));
    if (size > 0) parts.push(...padded(data));
  }
  if (end) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/** gzip at level 1: the tests care about the format, not the ratio. */
export function gzip(data: Buffer): Buffer {
  return gzipSync(data, { level: 1 });
}

/** One zip member. `mode` is a full st_mode (type bits included); `host` 3 is Unix, 0 MS-DOS (no modes). */
export interface ZipSpec {
  name: string;
  data?: Buffer;
  mode?: number;
  host?: number;
  method?: 0 | 8;
  /** Claim this uncompressed size in both headers instead of the real one. */
  declaredSize?: number;
  flags?: number;
  /** Raw external attributes (overrides mode/host). */
  externalAttributes?: number;
}

export interface ZipOptions {
  /** Rewrites the local header offsets the central directory points at (to make overlapping entries). */
  remapOffsets?: (offsets: number[]) => number[];
  /** Damages the first central directory record's signature. */
  corruptCentralDirectory?: boolean;
  /** Leaves out the end-of-central-directory record. */
  omitEocd?: boolean;
}

/** A zip archive (no zip64; fine below 4 GiB). */
export function makeZip(specs: readonly ZipSpec[], options: ZipOptions = {}): Buffer {
  const locals: Buffer[] = [];
  const records: { spec: ZipSpec; nameBytes: Buffer; crc: number; csize: number; usize: number; method: number; external: number; host: number }[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const spec of specs) {
    const data = spec.data ?? Buffer.alloc(0);
    const method = spec.method ?? (data.length > 0 ? 8 : 0);
    const body = method === 8 ? deflateRawSync(data, { level: 1 }) : data;
    const crc = crc32(data);
    const usize = spec.declaredSize ?? data.length;
    const nameBytes = Buffer.from(spec.name, 'utf8');
    const host = spec.host ?? 3;
    const external = spec.externalAttributes ?? (host === 3 ? ((spec.mode ?? (spec.name.endsWith('/') ? 0o040755 : 0o100644)) << 16) >>> 0 : spec.name.endsWith('/') ? 0x10 : 0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(spec.flags ?? 0x0800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x5821, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(usize, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    offsets.push(offset);
    locals.push(local, nameBytes, body);
    offset += local.length + nameBytes.length + body.length;
    records.push({ spec, nameBytes, crc, csize: body.length, usize, method, external, host });
  }
  const cdOffsets = options.remapOffsets ? options.remapOffsets(offsets) : offsets;
  const central: Buffer[] = [];
  records.forEach((r, i) => {
    const c = Buffer.alloc(46);
    c.writeUInt32LE(options.corruptCentralDirectory && i === 0 ? 0x02014b51 : 0x02014b50, 0);
    c.writeUInt16LE((r.host << 8) | 30, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(r.spec.flags ?? 0x0800, 8);
    c.writeUInt16LE(r.method, 10);
    c.writeUInt16LE(0, 12);
    c.writeUInt16LE(0x5821, 14);
    c.writeUInt32LE(r.crc, 16);
    c.writeUInt32LE(r.csize, 20);
    c.writeUInt32LE(r.usize, 24);
    c.writeUInt16LE(r.nameBytes.length, 28);
    c.writeUInt32LE(r.external, 38);
    c.writeUInt32LE(cdOffsets[i], 42);
    central.push(c, r.nameBytes);
  });
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(records.length, 8);
  eocd.writeUInt16LE(records.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, ...(options.omitEocd ? [] : [eocd])]);
}

/** A package member independent of the archive format. */
export interface PackageEntry {
  name: string;
  kind: 'file' | 'dir' | 'symlink';
  data?: Buffer;
  mode?: number;
  target?: string;
}

/** The members as tar specs. */
export function toTarSpecs(entries: readonly PackageEntry[]): TarSpec[] {
  return entries.map((e) =>
    e.kind === 'dir'
      ? { name: `${e.name}/`, type: '5', mode: e.mode ?? 0o755 }
      : e.kind === 'symlink'
        ? { name: e.name, type: '2', linkname: e.target }
        : { name: e.name, type: '0', data: e.data, mode: e.mode ?? 0o644 },
  );
}

/** The members as zip specs with Unix modes. */
export function toZipSpecs(entries: readonly PackageEntry[], { host = 3 } = {}): ZipSpec[] {
  return entries.map((e) =>
    e.kind === 'dir'
      ? { name: `${e.name}/`, mode: 0o040000 | (e.mode ?? 0o755), host }
      : e.kind === 'symlink'
        ? { name: e.name, data: Buffer.from(e.target!), mode: 0o120777, host, method: 0 }
        : { name: e.name, data: e.data, mode: 0o100000 | (e.mode ?? 0o644), host },
  );
}

/** Members moved under one top-level folder. */
export function nestUnder(top: string, entries: readonly PackageEntry[]): PackageEntry[] {
  return [{ name: top, kind: 'dir' }, ...entries.map((e) => ({ ...e, name: `${top}/${e.name}` }))];
}
