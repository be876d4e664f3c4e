// @peculiar/x509 registers its algorithms with tsyringe, which throws at import time unless the
// Reflect metadata API exists. The polyfill must be evaluated first, so every Distillery module
// imports the library through this file; ES modules evaluate imports in source order.
// core-js comes in with @tensorflow/tfjs; a direct dependency on reflect-metadata would make
// this independent of that (see the PKI notes in the project's report).
import 'core-js/proposals/reflect-metadata.js';

export * from '@peculiar/x509';
