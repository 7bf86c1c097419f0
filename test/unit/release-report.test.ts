import assert from 'node:assert/strict';
import { formatBytes, formatNumber, formatSigned, formatTime } from '../../src/report/format';
import { renderReleaseReport } from '../../src/report/render';
import { reportFixture } from '../fixtures/release-report';

describe('release report rendering (pure: data → HTML)', () => {
  it('escapes every value from the data: a model name with <script> stays text', () => {
    const html = renderReleaseReport(reportFixture());
    assert.ok(!html.includes('<script'), 'no script element anywhere');
    assert.ok(html.includes('support-bot&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'));
    assert.ok(html.includes('eval &lt;b&gt;reviewed&lt;/b&gt; &amp; fine'), 'operator input is escaped');
    assert.ok(html.includes('Δrouge&lt;L&gt;'), 'gate names are escaped');
    assert.ok(!/<b>reviewed/.test(html));
  });

  it('has every section, each with its plot, and loads nothing at view time', () => {
    const html = renderReleaseReport(reportFixture());
    for (const id of ['training', 'evaluation', 'quantization', 'canary', 'drift', 'decision-trail']) assert.match(html, new RegExp(`<section id="${id}">`), id);
    // loss, eval CI, eval Δ CI, quantization bars, one per canary metric (3), drift
    assert.equal(html.match(/<svg class="chart"/g)?.length, 8);
    assert.ok(!/\b(src|href)=/.test(html), 'no external resource');
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  });

  it('formats the key figures', () => {
    const html = renderReleaseReport(reportFixture());
    assert.match(html, /id="final-loss">0\.4322</);
    assert.match(html, /id="size-before">3\.00 GiB</);
    assert.match(html, /id="size-after">900 MiB</);
    assert.match(html, /29\.3% of the original/);
    assert.match(html, /0\.6512 – 0\.7891/, 'candidate CI');
    assert.match(html, /\+0\.0412/, 'signed delta');
    assert.match(html, /-0\.0105 – \+0\.0933/, 'delta CI');
    assert.match(html, /0\.6822/, 'comparator value = value - delta');
    assert.match(html, /2026-12-01 10:45:00 UTC/);
    assert.match(html, /<span class="verdict Fail"/);
    assert.match(html, /<td class="by">alice@example\.com<\/td>/);
    assert.match(html, /input drift/);
  });

  it('says why a section is empty instead of drawing an empty plot', () => {
    const d = reportFixture();
    delete d.evaluation;
    delete d.quantization;
    delete d.canary;
    delete d.drift;
    d.training.loss = [];
    d.trail = [];
    const html = renderReleaseReport(d);
    assert.equal(html.match(/<svg/g), null);
    assert.match(html, /did not reach evaluation/);
    assert.match(html, /No canary/);
    assert.match(html, /No drift monitor ran/);
    assert.match(html, /No loss curve/);
  });

  it('number formatting helpers', () => {
    assert.equal(formatNumber(1234567), '1,234,567');
    assert.equal(formatNumber(0.123456), '0.1235');
    assert.equal(formatNumber(0.5), '0.5');
    assert.equal(formatNumber(0.00001234), '1.23e-5');
    assert.equal(formatNumber(null), '–');
    assert.equal(formatBytes(1000), '1000 B');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatSigned(0.25), '+0.25');
    assert.equal(formatSigned(-2), '-2');
    assert.equal(formatTime('2026-12-01T10:45:00.123Z'), '2026-12-01 10:45:00 UTC');
  });
});
