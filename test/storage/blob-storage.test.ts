import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobStorage } from '../../src/storage/blob-storage.js';

describe('BlobStorage', () => {
  let root: string;
  let storage: BlobStorage;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'jobwire-blobs-'));
    storage = new BlobStorage(root);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('writes many blobs at once into folders that do not exist yet, each whole and with no temporary file left', async () => {
    const blobs = Array.from({ length: 40 }, (_, i) => ({
      key: `archive/acct/${i % 4}/file-${i}`,
      data: Buffer.from(`blob ${i} `.repeat(i + 1)),
    }));
    await Promise.all(blobs.map((blob) => storage.put(blob.key, blob.data)));
    for (const blob of blobs) expect(await storage.get(blob.key)).toEqual(blob.data);
    for (const folder of ['0', '1', '2', '3'])
      expect((await readdir(join(root, 'archive/acct', folder))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('streams a blob into a new folder and writes again into a folder removed meanwhile', async () => {
    const size = await storage.putStream('uploads/owner/one', Readable.from([Buffer.from('part one, '), Buffer.from('part two')]));
    expect(size).toBe(18);
    expect((await storage.get('uploads/owner/one')).toString()).toBe('part one, part two');
    await storage.delete('uploads/owner/one');
    await storage.deleteFolderIfEmpty('uploads/owner');
    await storage.put('uploads/owner/two', 'again');
    expect((await storage.get('uploads/owner/two')).toString()).toBe('again');
    await rm(join(root, 'uploads/owner'), { recursive: true });
    await storage.putParts('uploads/owner/three', [Buffer.from('a'), Buffer.from('bc')]);
    expect((await storage.get('uploads/owner/three')).toString()).toBe('abc');
  });
});
