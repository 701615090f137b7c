'use strict';
// The name the partner documentation uses (`require('mini-program-bridge-mock')`): the same
// module as miniapp-bridge-mock.js.
module.exports = require('./miniapp-bridge-mock.js');
