import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';

/**
 * Blobs in a local directory, addressed by slash-separated keys such as `raw/<account>/<hash>.eml`.
 * Writes go to a temporary file first and are renamed into place, so a reader never sees half a blob.
 */
export class BlobStorage {
  readonly root: string;
  /** Directories known to exist, so writing many blobs into one folder does not mkdir each time. */
  private readonly knownDirs = new Set<string>();

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** The file behind a key; rejects keys that would escape the root. */
  path(key: string): string {
    if (!/^[A-Za-z0-9._\-/]+$/.test(key) || key.split('/').some((part) => part === '..' || part === '')) {
      throw new Error(`invalid blob key: ${key}`);
    }
    const full = join(this.root, key);
    if (!full.startsWith(this.root + sep)) throw new Error(`invalid blob key: ${key}`);
    return full;
  }

  async put(key: string, data: Buffer | Uint8Array | string): Promise<void> {
    const target = this.path(key);
    const temporary = `${target}.${randomUUID()}.tmp`;
    await this.ensureDir(dirname(target));
    await writeFile(temporary, data).catch(async (error: NodeJS.ErrnoException) => {
      // The folder was removed behind our back: forget it and create it again.
      if (error.code !== 'ENOENT') throw error;
      this.knownDirs.delete(dirname(target));
      await this.ensureDir(dirname(target));
      await writeFile(temporary, data);
    });
    await rename(temporary, target);
  }

  /** Streams into a blob; returns the number of bytes written. */
  async putStream(key: string, source: Readable | AsyncIterable<Uint8Array>): Promise<number> {
    const target = this.path(key);
    const temporary = `${target}.${randomUUID()}.tmp`;
    await mkdir(dirname(target), { recursive: true });
    let bytes = 0;
    try {
      await pipeline(
        source,
        async function* count(chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            bytes += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(temporary),
      );
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    return bytes;
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.knownDirs.add(dir);
  }

  async get(key: string): Promise<Buffer> {
    return readFile(this.path(key));
  }

  stream(key: string): Readable {
    return createReadStream(this.path(key));
  }

  async exists(key: string): Promise<boolean> {
    try {
      await stat(this.path(key));
      return true;
    } catch {
      return false;
    }
  }

  /** Removes a blob; a missing blob is not an error, so a re-run after a crash can delete again. */
  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}
