// Mocha's spec reporter, plus the run's counts written to FORGELINE_TEST_SUMMARY (JSON) so that
// scripts/test can print one closing line for every layer, Python included.
const Mocha = require('mocha');
const { writeFileSync } = require('node:fs');

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const file = process.env.FORGELINE_TEST_SUMMARY;
      const s = runner.stats || {};
      if (file) writeFileSync(file, JSON.stringify({ passed: s.passes || 0, failed: s.failures || 0, skipped: s.pending || 0 }));
    });
  }
}
module.exports = SummaryReporter;
