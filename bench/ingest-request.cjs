// autocannon `setupRequest` for the ingest scenario, loaded by path in autocannon's worker
// thread: gives every request its own conversation id. INGEST_BODY_TEMPLATE holds the body
// with "%ID%" where the id goes.
'use strict';

const { randomBytes } = require('node:crypto');

const prefix = randomBytes(6).toString('hex');
let sequence = 0;

module.exports = function setupRequest(request) {
  sequence += 1;
  request.body = process.env.INGEST_BODY_TEMPLATE.replaceAll('%ID%', `${prefix}-${sequence}`);
  return request;
};
