/**
 * The ArtifactStore contract, as one suite every adapter must pass. Each test gets a fresh,
 * empty store from the factory (a new directory, a new S3 key prefix...), so tests are
 * independent of each other and of their order.
 */
import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ErrorType } from '../../src/contracts/errors';
import type { ArtifactStore, ObjectInfo } from '../../src/ports/artifact-store';
import { ArtifactConflictError, ArtifactIntegrityError, ArtifactNotFoundError, ForgelineError } from '../../src/ports/errors';
import { digestStream, expectedDigest, sha256, writeRandomFile, writeTree } from '../helpers/artifact-fixtures';

export interface StoreUnderTest {
  store: ArtifactStore;
  /** Another client of the same store (its own connection), as a second worker would have. */
  another(): ArtifactStore;
  /** Removes whatever the store wrote (temp directories...). */
  cleanup(): Promise<void>;
}

/** What the backend under test can do; a missing capability skips its tests, saying why. */
export interface StoreCapabilities {
  /** Atomic putIfAbsent / compareAndSwap. Unset: supported. A string: why not (shown as skipped). */
  conditionalWrites?: true | string;
}

const MiB = 1024 * 1024;

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Asserts `promise` rejects with an Error whose message names `key`. */
async function rejectsNamingKey(promise: Promise<unknown>, key: string): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof Error);
    assert.ok(err.message.includes(JSON.stringify(key)), `error should name ${JSON.stringify(key)}: ${err.message}`);
    return true;
  });
}

function isNotFound(key: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ArtifactNotFoundError, `expected ArtifactNotFoundError, got ${String(err)}`);
    assert.equal(err.terminal, true);
    assert.equal(err.type, ErrorType.ArtifactNotFound);
    assert.ok(err.uri.endsWith(key), `${err.uri} should end with ${key}`);
    return true;
  };
}

/**
 * Wraps `store` so that putFile fails after `okCalls` successful calls: a publisher dying midway.
 * It relies on publishDirectory writing files through the store's own putFile (the same public
 * method a caller uses), which is how the adapters are built.
 */
function failingPutFileAfter(store: ArtifactStore, okCalls: number): ArtifactStore {
  let calls = 0;
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'putFile') {
        return async (...args: Parameters<ArtifactStore['putFile']>) => {
          if (++calls > okCalls) throw new Error('injected failure: publisher died');
          return target.putFile.apply(receiver, args);
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

export function describeArtifactStoreConformance(name: string, factory: () => Promise<StoreUnderTest>, capabilities: StoreCapabilities = {}): void {
  describe(`ArtifactStore conformance: ${name}`, function () {
    let sut: StoreUnderTest | undefined;
    let store: ArtifactStore;
    /** A local scratch directory for source and destination files. */
    let scratch: string;

    beforeEach(async function () {
      sut = await factory();
      store = sut.store;
      scratch = await mkdtemp(path.join(os.tmpdir(), 'forgeline-conformance-'));
    });

    afterEach(async function () {
      await sut?.cleanup();
      sut = undefined;
      await rm(scratch, { recursive: true, force: true });
    });

    describe('put, get and head', function () {
      it('round-trips a Buffer, a string and a stream, reporting size and sha256', async function () {
        const bytes = Buffer.from([0, 1, 2, 255, 254]);
        const cases: Array<[string, Buffer | string | Readable, Buffer]> = [
          ['objects/buffer.bin', bytes, bytes],
          ['objects/text.txt', 'héllo wörld\n', Buffer.from('héllo wörld\n')],
          ['objects/stream.bin', Readable.from([Buffer.from('part one, '), Buffer.from('part two')]), Buffer.from('part one, part two')],
          ['objects/empty', Buffer.alloc(0), Buffer.alloc(0)],
        ];
        for (const [key, body, expected] of cases) {
          const info = await store.put(key, body, { contentType: 'application/octet-stream' });
          assert.equal(info.key, key);
          assert.equal(info.size, expected.length);
          assert.equal(info.sha256, sha256(expected));
          assert.ok(info.uri.startsWith(store.rootUri), `${info.uri} should start with ${store.rootUri}`);
          assert.ok(info.uri.endsWith(key));

          assert.deepEqual(await store.getBytes(key), expected);
          const head = await store.head(key);
          assert.ok(head);
          assert.equal(head.key, key);
          assert.equal(head.uri, info.uri);
          assert.equal(head.size, expected.length);
          assert.equal(head.sha256, sha256(expected));
          assert.ok(head.lastModified instanceof Date);
        }
      });

      it('putFile uploads a local file and getFile downloads one, creating parent directories', async function () {
        const source = path.join(scratch, 'source.bin');
        const digest = await writeRandomFile(source, 300_000);
        const put = await store.putFile('files/source.bin', source);
        assert.equal(put.sha256, digest);
        assert.equal(put.size, 300_000);

        const target = path.join(scratch, 'deep', 'er', 'copy.bin');
        const got = await store.getFile('files/source.bin', target);
        assert.equal(got.sha256, digest);
        assert.equal(got.size, 300_000);
        assert.equal(sha256(await readFile(target)), digest);
      });

      it('streams a large object in chunks', async function () {
        this.timeout(120_000);
        const size = 24 * MiB + 123;
        const source = path.join(scratch, 'large.bin');
        const digest = await writeRandomFile(source, size);
        const put = await store.put('large/object.bin', createReadStream(source));
        assert.equal(put.sha256, digest);
        assert.equal(put.size, size);

        const read = await digestStream(await store.get('large/object.bin'));
        assert.equal(read.size, size);
        assert.equal(read.sha256, digest);
        assert.ok(read.chunks > 1, `expected a stream of many chunks, got ${read.chunks}`);
      });
    });

    describe('idempotency and content addressing', function () {
      it('re-putting identical content is a no-op success', async function () {
        const first = await store.put('idem/a.txt', 'same bytes');
        const before = await store.head('idem/a.txt');
        const again = await store.put('idem/a.txt', 'same bytes', { sha256: sha256('same bytes') });
        const againStream = await store.put('idem/a.txt', Readable.from([Buffer.from('same bytes')]));
        const after = await store.head('idem/a.txt');
        assert.equal(again.sha256, first.sha256);
        assert.equal(againStream.sha256, first.sha256);
        assert.equal(after?.lastModified?.getTime(), before?.lastModified?.getTime(), 'the object must not be rewritten');
        assert.equal((await store.list('idem/')).items.length, 1);
      });

      it('put replaces different content at the same key', async function () {
        await store.put('mutable/x', 'old');
        const info = await store.put('mutable/x', 'new content');
        assert.equal(info.sha256, sha256('new content'));
        assert.equal((await store.getBytes('mutable/x')).toString(), 'new content');
        assert.equal((await store.head('mutable/x'))?.sha256, sha256('new content'));
      });

      it('putContent stores bytes once under cas/sha256/<hh>/<hash>', async function () {
        const digest = sha256('content-addressed');
        const first = await store.putContent('content-addressed');
        assert.equal(first.key, `cas/sha256/${digest.slice(0, 2)}/${digest}`);
        assert.equal(first.sha256, digest);
        const written = await store.head(first.key);

        const second = await store.putContent(Buffer.from('content-addressed'));
        assert.equal(second.key, first.key);
        assert.equal(second.sha256, digest);
        assert.equal((await store.head(first.key))?.lastModified?.getTime(), written?.lastModified?.getTime());

        const other = await store.putContent('other bytes');
        assert.notEqual(other.key, first.key);
        assert.deepEqual((await collect(store.listAll('cas/'))).map((i) => i.key).sort(), [first.key, other.key].sort());
        assert.equal((await store.getBytes(first.key)).toString(), 'content-addressed');
      });
    });

    describe('integrity', function () {
      const wrong = sha256('something else');

      it('rejects a put whose content differs from the expected sha256, writing nothing', async function () {
        const source = path.join(scratch, 'src.txt');
        await writeTree(scratch, { 'src.txt': 'file body' });
        const attempts: Array<[string, () => Promise<ObjectInfo>]> = [
          ['bad/buffer', () => store.put('bad/buffer', 'body', { sha256: wrong })],
          ['bad/stream', () => store.put('bad/stream', Readable.from([Buffer.from('body')]), { sha256: wrong })],
          ['bad/file', () => store.putFile('bad/file', source, { sha256: wrong })],
        ];
        for (const [key, attempt] of attempts) {
          await assert.rejects(attempt(), (err: unknown) => {
            assert.ok(err instanceof ArtifactIntegrityError, `expected ArtifactIntegrityError, got ${String(err)}`);
            assert.equal(err.expected, wrong);
            assert.equal(err.terminal, true);
            return true;
          });
          assert.equal(await store.head(key), undefined, `${key} must not exist`);
        }
        assert.deepEqual((await store.list('bad/')).items, []);
      });

      it('keeps the stored content when a replacing put fails its check', async function () {
        await store.put('keep/me', 'original');
        await assert.rejects(store.put('keep/me', 'replacement', { sha256: wrong }), ArtifactIntegrityError);
        assert.equal((await store.getBytes('keep/me')).toString(), 'original');
      });
    });

    describe('errors', function () {
      it('reports a missing key as ArtifactNotFoundError (get) or undefined (head)', async function () {
        await assert.rejects(store.get('missing/key'), isNotFound('missing/key'));
        await assert.rejects(store.getBytes('missing/key'), isNotFound('missing/key'));
        await assert.rejects(store.getFile('missing/key', path.join(scratch, 'out')), isNotFound('missing/key'));
        assert.equal(existsSync(path.join(scratch, 'out')), false);
        assert.equal(await store.head('missing/key'), undefined);
        await store.delete('missing/key'); // deleting nothing is fine
      });

      it('rejects invalid keys with an error naming the key', async function () {
        const source = path.join(scratch, 'f');
        await writeTree(scratch, { f: 'x' });
        for (const key of ['/abs/key', 'a/../b', '..', 'a//b', 'a/', '', './a', 'a/./b', '.forgeline/x']) {
          await rejectsNamingKey(store.put(key, 'x'), key);
          await rejectsNamingKey(store.putFile(key, source), key);
          await rejectsNamingKey(store.get(key), key);
          await rejectsNamingKey(store.head(key), key);
          await rejectsNamingKey(store.delete(key), key);
          await rejectsNamingKey(store.getFile(key, path.join(scratch, 'out')), key);
        }
        for (const prefix of ['/abs/', 'a/../', 'a//b/']) {
          await rejectsNamingKey(store.list(prefix), prefix);
          await rejectsNamingKey(collect(store.listAll(prefix)), prefix);
        }
        assert.deepEqual((await store.list('')).items, [], 'nothing may have been written');
      });
    });

    describe('listing', function () {
      /**
       * 23 keys under ds/, nested at various depths, plus neighbours outside the prefix.
       * Chosen so that directory-walk order agrees with byte order: s3rver lists in walk order
       * (so "a/c" before "a-b", unlike S3), which the local store's own test covers instead.
       */
      const inside = [
        ...Array.from({ length: 12 }, (_, i) => `ds/flat-${String(i).padStart(2, '0')}`),
        'ds/b/one',
        'ds/b/two',
        'ds/b/deeper/three',
        'ds/c/x/y/z',
        'ds/d0',
        'ds/d1/e',
        'ds/z',
        'ds/zz/last',
        'ds/A-upper',
        'ds/_underscore',
        'ds/0-digit',
      ];
      const outside = ['dt/other', 'd', 'dsx/near-miss'];
      const sorted = [...inside].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

      beforeEach(async function () {
        await Promise.all([...inside, ...outside].map((key) => store.put(key, `body of ${key}`)));
      });

      it('pages through keys in lexicographic order with cursors', async function () {
        const seen: string[] = [];
        const pageSizes: number[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.list('ds/', { pageSize: 5, ...(cursor !== undefined ? { cursor } : {}) });
          pageSizes.push(page.items.length);
          for (const item of page.items) {
            assert.equal(item.size, Buffer.byteLength(`body of ${item.key}`));
            assert.ok(item.uri.endsWith(item.key));
            seen.push(item.key);
          }
          cursor = page.cursor;
        } while (cursor !== undefined);
        assert.deepEqual(seen, sorted);
        assert.deepEqual(pageSizes, [5, 5, 5, 5, 3]);
      });

      it('lists everything with listAll, page by page', async function () {
        const all = await collect(store.listAll('ds/', { pageSize: 4 }));
        assert.deepEqual(
          all.map((i) => i.key),
          sorted,
        );
        assert.equal((await collect(store.listAll(''))).length, inside.length + outside.length);
      });

      it('matches prefixes as strings, like S3', async function () {
        assert.deepEqual(
          (await store.list('ds/b')).items.map((i) => i.key),
          ['ds/b/deeper/three', 'ds/b/one', 'ds/b/two'],
        );
        assert.deepEqual(
          (await store.list('ds/d')).items.map((i) => i.key),
          ['ds/d0', 'ds/d1/e'],
        );
        assert.deepEqual(
          (await store.list('ds')).items.map((i) => i.key).filter((k) => !k.startsWith('ds/')),
          ['dsx/near-miss'],
        );
        const nothing = await store.list('nothing/here/');
        assert.deepEqual(nothing.items, []);
        assert.equal(nothing.cursor, undefined);
      });

      it('no longer lists a deleted key, and frees its prefix', async function () {
        await store.delete('ds/c/x/y/z');
        assert.equal(await store.head('ds/c/x/y/z'), undefined);
        assert.ok(!(await collect(store.listAll('ds/'))).some((i) => i.key === 'ds/c/x/y/z'));
        // Nothing lives under ds/c/ any more, so ds/c may now be an object itself.
        await store.put('ds/c', 'now a leaf');
        assert.equal((await store.getBytes('ds/c')).toString(), 'now a leaf');
      });
    });

    const conditional = capabilities.conditionalWrites ?? true;
    (conditional === true ? describe : describe.skip)(
      `conditional writes${conditional === true ? '' : ` (skipped: ${conditional})`}`,
      function () {
        it('putIfAbsent creates once; later calls are refused with the existing etag and sha256', async function () {
          const first = await store.putIfAbsent('cond/once.json', '{"n":1}', { contentType: 'application/json' });
          assert.equal(first.written, true);
          assert.ok(first.written && first.etag);
          assert.equal(first.info.sha256, sha256('{"n":1}'));

          const second = await store.putIfAbsent('cond/once.json', '{"n":2}');
          assert.equal(second.written, false);
          assert.ok(!second.written);
          assert.equal(second.current?.etag, first.etag);
          assert.equal(second.current?.info.sha256, sha256('{"n":1}'));
          assert.equal((await store.getBytes('cond/once.json')).toString(), '{"n":1}');
        });

        it('getWithEtag returns the bytes with the etag of the write that stored them', async function () {
          assert.equal(await store.getWithEtag('cond/absent'), undefined);
          const put = await store.putIfAbsent('cond/read.txt', Buffer.from('versioned'));
          assert.ok(put.written);
          const got = await store.getWithEtag('cond/read.txt');
          assert.ok(got);
          assert.equal(got.body.toString(), 'versioned');
          assert.equal(got.etag, put.etag);
          assert.equal(got.info.sha256, sha256('versioned'));
          assert.ok(got.info.uri.endsWith('cond/read.txt'));
        });

        it('compareAndSwap writes only over the expected etag, and null means "only if absent"', async function () {
          const created = await store.compareAndSwap('cond/cas', 'v1', null);
          assert.ok(created.written);
          const refusedCreate = await store.compareAndSwap('cond/cas', 'v1-again', null);
          assert.ok(!refusedCreate.written);
          assert.equal(refusedCreate.current?.etag, created.etag);

          const swapped = await store.compareAndSwap('cond/cas', 'v2', created.etag);
          assert.ok(swapped.written);
          assert.notEqual(swapped.etag, created.etag);
          assert.equal((await store.getWithEtag('cond/cas'))?.etag, swapped.etag);

          // A writer still holding v1's etag lost: refused, told what is there now, nothing written.
          const stale = await store.compareAndSwap('cond/cas', 'v2-from-a-stale-writer', created.etag);
          assert.ok(!stale.written);
          assert.equal(stale.current?.etag, swapped.etag);
          assert.equal(stale.current?.info.sha256, sha256('v2'));
          assert.equal((await store.getBytes('cond/cas')).toString(), 'v2');
          assert.equal((await store.head('cond/cas'))?.sha256, sha256('v2'));

          // Expecting an object that is not there is refused too.
          const gone = await store.compareAndSwap('cond/never-written', 'x', swapped.etag);
          assert.deepEqual(gone, { written: false, current: undefined });
          assert.equal(await store.head('cond/never-written'), undefined);
        });

        it('rejects invalid keys with an error naming the key', async function () {
          for (const key of ['/abs', 'a/../b', '.forgeline/x']) {
            await rejectsNamingKey(store.putIfAbsent(key, 'x'), key);
            await rejectsNamingKey(store.compareAndSwap(key, 'x', null), key);
            await rejectsNamingKey(store.getWithEtag(key), key);
          }
        });

        it('lets exactly one of 8 clients racing to create a key win; the others see its etag', async function () {
          this.timeout(60_000);
          for (let round = 0; round < 3; round++) {
            const key = `race/create-${round}`;
            const clients = Array.from({ length: 8 }, () => sut!.another());
            const results = await Promise.all(clients.map((client, i) => client.putIfAbsent(key, `writer ${i}`)));
            const winners = results.flatMap((r, i) => (r.written ? [{ i, etag: r.etag }] : []));
            assert.equal(winners.length, 1, `round ${round}: ${winners.length} winners`);
            for (const r of results) if (!r.written) assert.equal(r.current?.etag, winners[0]!.etag);
            assert.equal((await store.getBytes(key)).toString(), `writer ${winners[0]!.i}`);
          }
        });

        it('loses no update when 4 clients increment one counter by compare-and-swap', async function () {
          this.timeout(120_000);
          await store.putIfAbsent('race/counter', '0');
          let refusals = 0;
          const increments = 6;
          await Promise.all(
            Array.from({ length: 4 }, async () => {
              const client = sut!.another();
              for (let done = 0; done < increments; ) {
                const current = await client.getWithEtag('race/counter');
                assert.ok(current);
                const next = Number(current.body.toString()) + 1;
                const result = await client.compareAndSwap('race/counter', String(next), current.etag);
                if (result.written) done++;
                else refusals++;
              }
            }),
          );
          assert.equal((await store.getBytes('race/counter')).toString(), String(4 * increments));
          assert.ok(refusals > 0, 'the clients should have raced at least once');
        });
      },
    );

    describe('directory versions', function () {
      const tree = {
        'config.json': '{"r": 16}\n',
        'adapter_model.safetensors': Buffer.alloc(70_000, 7),
        'tokenizer/vocab.txt': 'a\nb\nc\n',
        'tokenizer/deep/merges.txt': 'a b\n',
      };
      let source: string;

      beforeEach(async function () {
        source = path.join(scratch, 'source');
        await writeTree(source, tree);
      });

      it('publishes every file, then a manifest naming them', async function () {
        const manifest = await store.publishDirectory(source, 'models/demo/v1', { run: 'r1', epochs: 3 });
        assert.equal(manifest.schema, 'forgeline.manifest/v1');
        assert.equal(manifest.prefix, 'models/demo/v1/');
        assert.ok(!Number.isNaN(Date.parse(manifest.createdAt)));
        assert.deepEqual(manifest.metadata, { run: 'r1', epochs: 3 });
        assert.equal(manifest.digest, expectedDigest(tree));
        assert.deepEqual(
          manifest.files,
          Object.keys(tree)
            .sort()
            .map((p) => {
              const content = tree[p as keyof typeof tree];
              return { path: p, size: Buffer.byteLength(content), sha256: sha256(content) };
            }),
        );
        for (const [p, content] of Object.entries(tree)) {
          assert.deepEqual(await store.getBytes(`models/demo/v1/${p}`), Buffer.from(content));
        }
        assert.deepEqual(await store.readManifest('models/demo/v1/'), manifest);
        assert.deepEqual(await store.readManifest('models/demo/v1'), manifest);
        assert.ok(await store.head('models/demo/v1/MANIFEST.json'));
      });

      it('shows a version without its manifest as unpublished, and completes it on publish', async function () {
        assert.equal(await store.readManifest('models/demo/v2/'), undefined);
        // What a publisher that died before the manifest leaves behind (one file even stale).
        await store.put('models/demo/v2/config.json', 'stale bytes from an older attempt');
        await store.put('models/demo/v2/tokenizer/vocab.txt', tree['tokenizer/vocab.txt']);
        assert.equal(await store.readManifest('models/demo/v2/'), undefined);
        await assert.rejects(store.fetchDirectory('models/demo/v2/', path.join(scratch, 'out')), isNotFound('models/demo/v2/MANIFEST.json'));

        const manifest = await store.publishDirectory(source, 'models/demo/v2/');
        assert.equal(manifest.digest, expectedDigest(tree));
        assert.equal((await store.getBytes('models/demo/v2/config.json')).toString(), tree['config.json']);
      });

      it('leaves no manifest when a publish dies midway, and a re-run completes it', async function () {
        await assert.rejects(failingPutFileAfter(store, 2).publishDirectory(source, 'models/demo/v3/'), /injected failure/);
        assert.equal(await store.readManifest('models/demo/v3/'), undefined);
        assert.equal(await store.head('models/demo/v3/MANIFEST.json'), undefined);

        const manifest = await store.publishDirectory(source, 'models/demo/v3/');
        assert.deepEqual(await store.readManifest('models/demo/v3/'), manifest);
      });

      it('treats publishing the same content again as a no-op returning the existing manifest', async function () {
        const first = await store.publishDirectory(source, 'models/demo/v4/', { attempt: 1 });
        const copy = path.join(scratch, 'copy');
        await cp(source, copy, { recursive: true });
        const second = await store.publishDirectory(copy, 'models/demo/v4', { attempt: 2 });
        assert.deepEqual(second, first, 'the existing manifest, metadata and createdAt included');
        assert.deepEqual(await store.readManifest('models/demo/v4/'), first);
      });

      it('refuses different content under a published prefix, changing nothing', async function () {
        const first = await store.publishDirectory(source, 'models/demo/v5/');
        const changed = path.join(scratch, 'changed');
        await cp(source, changed, { recursive: true });
        await writeTree(changed, { 'config.json': '{"r": 32}\n', 'extra.txt': 'new file' });

        await assert.rejects(store.publishDirectory(changed, 'models/demo/v5/'), (err: unknown) => {
          assert.ok(err instanceof ArtifactConflictError, `expected ArtifactConflictError, got ${String(err)}`);
          assert.equal(err.terminal, true);
          assert.ok(err.uri.endsWith('models/demo/v5/'));
          return true;
        });
        assert.deepEqual(await store.readManifest('models/demo/v5/'), first);
        assert.equal((await store.getBytes('models/demo/v5/config.json')).toString(), tree['config.json']);
        assert.equal(await store.head('models/demo/v5/extra.txt'), undefined);
      });

      it('refuses a directory with a top-level MANIFEST.json, or with no files', async function () {
        const withManifest = path.join(scratch, 'with-manifest');
        await writeTree(withManifest, { 'MANIFEST.json': '{}', 'a.txt': 'a' });
        await assert.rejects(store.publishDirectory(withManifest, 'models/bad/'), /MANIFEST\.json/);
        const empty = await mkdtemp(path.join(scratch, 'empty-'));
        await assert.rejects(store.publishDirectory(empty, 'models/empty/'), /no files/);
        assert.deepEqual((await store.list('models/')).items, []);
      });

      it('fetches a version into a local directory, verifying every file', async function () {
        const published = await store.publishDirectory(source, 'models/demo/v6/');
        const target = path.join(scratch, 'fetched');
        const fetched = await store.fetchDirectory('models/demo/v6', target);
        assert.deepEqual(fetched, published);
        for (const [p, content] of Object.entries(tree)) {
          assert.deepEqual(await readFile(path.join(target, ...p.split('/'))), Buffer.from(content), p);
        }
      });

      it('rejects a fetch when a stored file no longer matches the manifest', async function () {
        await store.publishDirectory(source, 'models/demo/v7/');
        // Rewrite one file behind the manifest's back (through the store, so its own checksum
        // is consistent: only the manifest can tell).
        await store.put('models/demo/v7/tokenizer/vocab.txt', 'tampered\n');
        const target = path.join(scratch, 'fetched');
        await assert.rejects(store.fetchDirectory('models/demo/v7/', target), (err: unknown) => {
          assert.ok(err instanceof ArtifactIntegrityError, `expected ArtifactIntegrityError, got ${String(err)}`);
          assert.equal(err.expected, sha256(tree['tokenizer/vocab.txt']));
          assert.equal(err.actual, sha256('tampered\n'));
          return true;
        });
        assert.equal(existsSync(path.join(target, 'tokenizer', 'vocab.txt')), false, 'a file failing verification must not be left behind');
      });

      it('rejects a corrupt manifest', async function () {
        await store.put('models/corrupt/MANIFEST.json', 'not json at all');
        await assert.rejects(store.readManifest('models/corrupt/'), (err: unknown) => {
          assert.ok(err instanceof ForgelineError);
          assert.equal(err.type, ErrorType.ArtifactIntegrity);
          return true;
        });
      });
    });
  });
}
