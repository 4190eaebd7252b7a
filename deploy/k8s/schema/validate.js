#!/usr/bin/env node
// Validates Kubernetes objects against the Kubernetes OpenAPI schemas, as
// compiled into npm kubernetes-models (pinned in package-lock.json).
//
// Input: a JSON array of objects (e.g. `kubectl kustomize` output converted
// from YAML), from the file named by the one argument or from stdin.
// Output: one line per object, `ok KIND NAME` or `invalid KIND NAME: ...`,
// then exit 0 if every object validated, 1 if any did not (an apiVersion/kind
// the package has no model for is invalid too: unchecked is not passed),
// 2 on unusable input.
//
// Needs NODE_PATH to hold the node_modules that `npm ci` made from this
// directory (deploy/install-deps.sh puts it in $RINGSTORE_NPM_DIR).
//
// What the schemas cannot see: they do not forbid unknown fields (neither
// does the API's OpenAPI document; the API server drops or warns about
// them), so a misspelt field name passes here. The manifest test checks the
// fields that matter by name.
'use strict';

const fs = require('fs');

// "apps/v1" + "StatefulSet" -> kubernetes-models/apps/v1/StatefulSet;
// "v1" (the core group) + "Service" -> kubernetes-models/v1/Service.
function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' ||
      !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    return null;
  }
  let mod;
  try {
    mod = require(`kubernetes-models/${apiVersion}/${kind}`);
  } catch (e) {
    // The package's "exports" has no such path (or, without exports, no file):
    // a kind it has no model for. main() has checked that the package loads.
    if (e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED' || e.code === 'MODULE_NOT_FOUND') {
      return null;
    }
    throw e;
  }
  const model = mod[kind];
  return typeof model === 'function' && typeof model.prototype.validate === 'function' ? model : null;
}

function describe(errors) {
  return (errors || [])
    .map((e) => `${e.instancePath || '/'} ${e.message}` +
         (e.params && e.params.missingProperty && !String(e.message).includes(e.params.missingProperty)
           ? ` (${e.params.missingProperty})` : ''))
    .join('; ');
}

function validateOne(obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return 'not an object';
  }
  const Model = modelFor(obj.apiVersion, obj.kind);
  if (!Model) {
    return `no schema for apiVersion ${JSON.stringify(obj.apiVersion)} kind ${JSON.stringify(obj.kind)}`;
  }
  try {
    new Model(obj).validate();
    return null;
  } catch (e) {
    return describe(e.errors) || String(e.message);
  }
}

function main() {
  const args = process.argv.slice(2);
  if (args.length > 1) {
    process.stderr.write('usage: validate.js [FILE.json]  (default: stdin)\n');
    return 2;
  }
  try {
    require('kubernetes-models/v1/Pod');
  } catch (e) {
    process.stderr.write(`validate.js: npm kubernetes-models does not load (NODE_PATH?): ${e.message}\n`);
    return 2;
  }
  let objects;
  try {
    objects = JSON.parse(fs.readFileSync(args.length ? args[0] : 0, 'utf8'));
  } catch (e) {
    process.stderr.write(`validate.js: cannot read a JSON document: ${e.message}\n`);
    return 2;
  }
  if (!Array.isArray(objects) || objects.length === 0) {
    process.stderr.write('validate.js: expected a non-empty JSON array of objects\n');
    return 2;
  }
  let bad = 0;
  for (const obj of objects) {
    const kind = obj && obj.kind;
    const name = obj && obj.metadata && obj.metadata.name;
    const problem = validateOne(obj);
    if (problem) {
      bad++;
      process.stdout.write(`invalid ${kind} ${name}: ${problem}\n`);
    } else {
      process.stdout.write(`ok ${kind} ${name}\n`);
    }
  }
  return bad ? 1 : 0;
}

process.exitCode = main();
