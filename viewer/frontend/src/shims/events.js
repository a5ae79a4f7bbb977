// vtk.js pulls xmlbuilder2 (XML writers the viewer never uses), which extends Node's
// EventEmitter at load time: a minimal stand-in keeps the module loadable in a browser.
export class EventEmitter {
  on() { return this; }
  once() { return this; }
  off() { return this; }
  emit() { return false; }
}
export default { EventEmitter };
