// Node built-ins that bundled packages mention on code paths a browser never takes.
export default {};
