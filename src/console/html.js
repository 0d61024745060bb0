/** Preact's `h` through htm: JSX-like templates with no build step of their own. */
import htm from 'htm';
import { h } from 'preact';

export const html = htm.bind(h);
