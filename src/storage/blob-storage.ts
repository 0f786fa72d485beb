import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';

/**
 * Blobs in a local directory, addressed by slash-separated keys such as `raw/<account>/<hash>.eml`.
 * Writes go to a temporary file first and are renamed into place, so a reader never sees half a blob.
 * A write is on disk when it resolves (the file, its name, and any folder made for it): callers
 * commit rows that refer to it next, or delete the blob it replaces (an archive's plaintext once
 * its sealed copy is written), and both must outlive a power cut.
 */
export class BlobStorage {
  readonly root: string;
  /** Folders made or found, so writing many blobs into one folder does not mkdir each time. */
  private readonly dirs = new Map<string, Promise<void>>();

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
    await this.inFolderOf(target, () => writeFile(temporary, data, { flush: true }));
    await rename(temporary, target);
    await syncFolder(dirname(target));
  }

  /**
   * Writes a new blob from parts, in one system call where the OS allows, and returns where each
   * part starts. For keys never written before (packs): there is no temporary file, so whoever
   * records the key must do so only after this resolved. The file and its folder are synced to
   * disk first: a database commit that refers to them outlives a power cut, and so must they (one
   * sync per pack, not per message).
   */
  async putParts(key: string, parts: readonly Uint8Array[]): Promise<number[]> {
    const target = this.path(key);
    const offsets: number[] = [];
    let total = 0;
    for (const part of parts) {
      offsets.push(total);
      total += part.length;
    }
    const file = await this.inFolderOf(target, () => open(target, 'wx'));
    try {
      const { bytesWritten } = await file.writev(parts as Uint8Array[]);
      if (bytesWritten !== total) throw new Error(`short write to blob ${key}: ${bytesWritten} of ${total} bytes`);
    } catch (error) {
      await file.close().catch(() => {});
      await rm(target, { force: true });
      throw error;
    }
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    await syncFolder(dirname(target));
    return offsets;
  }

  /** `length` bytes of a blob from `offset`; fewer only if the blob ends first. */
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const file = await open(this.path(key), 'r');
    try {
      const buffer = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await file.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return filled === length ? buffer : buffer.subarray(0, filled);
    } finally {
      await file.close();
    }
  }

  /** Overwrites `length` bytes of a blob from `offset` with zeros: the part of a pack whose message was deleted. */
  async zeroRange(key: string, offset: number, length: number): Promise<void> {
    let file: Awaited<ReturnType<typeof open>>;
    try {
      file = await open(this.path(key), 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    try {
      // Never past the end: a range beyond it has nothing to overwrite, and must not grow the file.
      const end = Math.min(offset + length, (await file.stat()).size);
      const zeros = Buffer.alloc(Math.max(0, Math.min(end - offset, 1024 * 1024)));
      for (let at = offset; at < end; ) {
        const { bytesWritten } = await file.write(zeros, 0, Math.min(zeros.length, end - at), at);
        at += bytesWritten;
      }
    } finally {
      await file.close();
    }
  }

  /** The keys of the blobs directly inside a folder (none if it does not exist). */
  async list(folder: string): Promise<string[]> {
    try {
      const entries = await readdir(this.path(folder), { withFileTypes: true });
      // Only names a key can have: a stray file put there by hand is not ours to touch.
      return entries.filter((entry) => entry.isFile() && /^[A-Za-z0-9._-]+$/.test(entry.name)).map((entry) => `${folder}/${entry.name}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /** Streams into a blob; returns the number of bytes written. */
  async putStream(key: string, source: Readable | AsyncIterable<Uint8Array>): Promise<number> {
    const target = this.path(key);
    const temporary = `${target}.${randomUUID()}.tmp`;
    // Made again if it was removed meanwhile: a stream cannot be written twice, as `inFolderOf` would.
    this.dirs.delete(dirname(target));
    await this.ensureDir(dirname(target));
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
        createWriteStream(temporary, { flush: true }),
      );
      await rename(temporary, target);
      await syncFolder(dirname(target));
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    return bytes;
  }

  /**
   * Creates something in `target`'s folder, made first if need be; once more if the folder was
   * removed behind our back meanwhile (a job's pack folder goes with its last pack).
   */
  private async inFolderOf<T>(target: string, create: () => Promise<T>): Promise<T> {
    const dir = dirname(target);
    await this.ensureDir(dir);
    return create().catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      this.dirs.delete(dir);
      await this.ensureDir(dir);
      return create();
    });
  }

  /**
   * Makes a folder and any missing parents, each made durable in its own parent. Concurrent writers
   * into a new folder wait for the same making, so none returns before the folder is on disk.
   */
  private ensureDir(dir: string): Promise<void> {
    let ready = this.dirs.get(dir);
    if (!ready) {
      ready = (async () => {
        const firstMade = await mkdir(dir, { recursive: true });
        if (firstMade === undefined) return;
        const top = resolve(firstMade);
        for (let made = dir; made.startsWith(top); made = dirname(made)) {
          await syncFolder(dirname(made));
          if (made === top) break;
        }
      })();
      this.dirs.set(dir, ready);
      const made = ready;
      made.catch(() => {
        if (this.dirs.get(dir) === made) this.dirs.delete(dir);
      });
    }
    return ready;
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

  /** Removes a folder if it is empty; one still holding blobs stays, as does one already gone. */
  async deleteFolderIfEmpty(folder: string): Promise<void> {
    const path = this.path(folder);
    this.dirs.delete(path);
    await rmdir(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST' && error.code !== 'ENOENT') throw error;
    });
  }
}

/** Makes a folder's entries (a file just created in it) durable. */
async function syncFolder(path: string): Promise<void> {
  const folder = await open(path, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
