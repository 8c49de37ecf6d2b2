// Generates TypeScript interfaces for every message of an AsyncAPI document with Modelina,
// AsyncAPI's own model generator: what a consumer in another language starts from.
//
//   node tools/asyncapi/models.cjs docs/asyncapi/offer_service.json <output directory>
//
// Interfaces (not classes) with the JSON's own property names, string unions for enums and
// plain objects for maps, so that an event parsed with JSON.parse is the generated type as
// it is, with no mapping.
'use strict';

const fs = require('node:fs');
const { TypeScriptFileGenerator } = require('@asyncapi/modelina');

async function main([input, output]) {
  if (!input || !output) {
    console.error('usage: node models.cjs <asyncapi.json> <output directory>');
    return 2;
  }
  const generator = new TypeScriptFileGenerator({
    modelType: 'interface',
    enumType: 'union',
    rawPropertyNames: true,
    mapType: 'record',
    constraints: {
      // A `const` as its literal ('hourly'). Modelina 5 writes the enum member
      // (HourlyTermsContractType.HOURLY) even with enumType 'union', where no such member exists.
      constant: ({ constrainedMetaModel }) => {
        const constant = constrainedMetaModel.options.const;
        return constant === undefined ? undefined : JSON.stringify(constant.originalInput);
      },
    },
  });
  const models = await generator.generateToFiles(fs.readFileSync(input, 'utf8'), output, {
    exportType: 'named',
  });
  for (const model of models) console.log(`${output}/${model.modelName}.ts`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
