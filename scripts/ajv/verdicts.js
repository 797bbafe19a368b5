// Ajv's verdict on pgimg's schema and on spec documents, for the conformance
// test that compares it with pgimg's own schema stage.
//
//   node verdicts.js SCHEMA.json DOC.json...
//
// First compiles SCHEMA in strict mode with the standard formats known
// (ajv-formats): any non-standard keyword or format, or a keyword that does
// not apply to its type, throws. Then prints one JSON line per document:
// {"file", "valid", "errors": ["<instancePath> <keyword>", ...]}. Formats are
// annotations for the verdicts, as draft 2020-12 specifies by default and as
// pgimg's schema stage treats them.
"use strict";
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const [schemaPath, ...docs] = process.argv.slice(2);
const schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));

const strict = new Ajv2020({ strict: true, allErrors: true });
addFormats(strict);
strict.compile(schema);

const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: false });
const validate = ajv.compile(schema);
for (const file of docs) {
  const valid = validate(JSON.parse(fs.readFileSync(file, "utf8")));
  const errors = valid ? [] : validate.errors.map((e) => `${e.instancePath} ${e.keyword}`);
  console.log(JSON.stringify({ file, valid, errors }));
}
