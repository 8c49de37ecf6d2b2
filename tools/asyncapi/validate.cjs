// Parses each AsyncAPI document given on the command line with AsyncAPI's own parser (the one
// behind the AsyncAPI CLI, Generator, Modelina and Studio) and prints every diagnostic.
// Exit 1 when any document has an error: the document is then unusable for those tools.
//
//   node tools/asyncapi/validate.cjs docs/asyncapi/*.json
'use strict';

const fs = require('node:fs');
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

const SEVERITY = { 0: 'error', 1: 'warning', 2: 'info', 3: 'hint' };

async function main(paths) {
  if (paths.length === 0) {
    console.error('usage: node validate.cjs <asyncapi.json>...');
    return 2;
  }
  const parser = new Parser();
  let failed = 0;
  for (const path of paths) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(path, 'utf8'), {
      source: path,
    });
    const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
    for (const d of diagnostics) {
      const where = d.path && d.path.length ? d.path.join('/') : '(document)';
      console.log(`${path}: ${SEVERITY[d.severity]} ${d.code}: ${d.message} at ${where}`);
    }
    // No document comes back when the parser refused it, even without an error diagnostic.
    const ok = errors.length === 0 && document !== undefined;
    console.log(`${path}: ${errors.length} error(s), ${diagnostics.length - errors.length} other diagnostic(s)${ok ? '' : ' - NOT a valid AsyncAPI document'}`);
    if (!ok) failed += 1;
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
