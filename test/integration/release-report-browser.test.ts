import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderReleaseReport } from '../../src/report/render';
import { reportFixture } from '../fixtures/release-report';
import { chromiumPath, renderInChromium } from '../helpers/chromium';
import { tempHome } from '../helpers/processes';

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG file');
  assert.equal(png.subarray(12, 16).toString('latin1'), 'IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe('release report in headless Chromium (Debian chromium, installed by scripts/lib/chromium.sh)', function () {
  this.timeout(20 * 60_000); // a first run may install chromium with apt-get

  let home: ReturnType<typeof tempHome>;
  before(function () {
    home = tempHome('report-browser');
    chromiumPath();
  });
  after(() => home?.cleanup());

  it('renders every plot; the key figures are in the DOM; the screenshot has content', async function () {
    const file = path.join(home.dir, 'report.html');
    writeFileSync(file, renderReleaseReport(reportFixture()));
    const shot = path.join(home.dir, 'report.png');
    const { dom } = await renderInChromium(file, { width: 1100, height: 2400, screenshot: shot });

    // The DOM Chromium built: every section and chart, the figures, the escaped name as text.
    for (const id of ['training', 'evaluation', 'quantization', 'canary', 'drift', 'decision-trail']) assert.match(dom, new RegExp(`<section id="${id}">`), id);
    assert.equal(dom.match(/<svg class="chart"/g)?.length, 8, 'eight inline SVG charts');
    assert.equal(dom.match(/<polyline /g)?.length, 10, 'lines: loss 1, canary 3 metrics × (stable, candidate) 6, drift score + threshold + error rate 3');
    assert.match(dom, /<strong id="final-loss">0\.4322<\/strong>/);
    assert.match(dom, /<strong id="size-before">3\.00 GiB<\/strong> → <strong id="size-after">900 MiB<\/strong>/);
    assert.match(dom, /<td class="by">alice@example\.com<\/td>/);
    assert.match(dom, /<strong id="outcome">RolledBack<\/strong>/);
    assert.ok(!/<script/i.test(dom), 'the model name did not become a script element');
    assert.match(dom, /support-bot&lt;script&gt;alert\("x"\)&lt;\/script&gt;/);

    // The screenshot: the requested size, and far more content than a blank page of that size.
    const png = readFileSync(shot);
    assert.deepEqual(pngSize(png), { width: 1100, height: 2400 });
    const blankFile = path.join(home.dir, 'blank.html');
    writeFileSync(blankFile, '<!DOCTYPE html><html><body></body></html>');
    const blankShot = path.join(home.dir, 'blank.png');
    await renderInChromium(blankFile, { width: 1100, height: 2400, screenshot: blankShot });
    const blank = readFileSync(blankShot);
    assert.ok(png.length > 10 * blank.length, `the report's screenshot (${png.length} B) holds far more than a blank page's (${blank.length} B)`);
  });
});
