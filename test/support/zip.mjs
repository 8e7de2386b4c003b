// Reads a zip archive (a .vsix) through its central directory: stored and deflated entries, no
// zip64 (a package of a few megabytes never needs it).
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

/** Map of entry name → its contents, read on demand. */
export function readZip(file) {
  const buf = readFileSync(file);
  // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB, at the very end.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file}: not a zip archive`);
  const entries = new Map();
  const count = buf.readUInt16LE(eocd + 10);
  for (let at = buf.readUInt32LE(eocd + 16), k = 0; k < count; k++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new Error(`${file}: bad central directory entry ${k}`);
    const method = buf.readUInt16LE(at + 10);
    const size = buf.readUInt32LE(at + 20);
    const nameLength = buf.readUInt16LE(at + 28);
    const local = buf.readUInt32LE(at + 42);
    entries.set(buf.toString('utf8', at + 46, at + 46 + nameLength), () => {
      const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
      const data = buf.subarray(start, start + size);
      if (method === 0) return data;
      if (method === 8) return inflateRawSync(data);
      throw new Error(`${file}: compression method ${method} is not supported`);
    });
    at += 46 + nameLength + buf.readUInt16LE(at + 30) + buf.readUInt16LE(at + 32);
  }
  return entries;
}
