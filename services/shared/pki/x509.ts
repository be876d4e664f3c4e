// @peculiar/x509 registers its algorithms with tsyringe, which throws at import time unless the
// Reflect metadata API exists. The polyfill must be evaluated first, so every Distillery module
// imports the library through this file; ES modules evaluate imports in source order.
import 'reflect-metadata';

export * from '@peculiar/x509';
