'use strict';
/*
 * Preload (node --require) for tests: resolves the real Azure host names
 * the emulator serves to 127.0.0.1, so clients keep real URLs.
 */
const dns = require('dns');

const EMULATED = /^(login\.microsoftonline\.com|login\.windows\.net|[a-z0-9-]+\.vault\.azure\.net|[a-z0-9-]+\.managedhsm\.azure\.net)$/i;

function
answer(options)
{
	const all = typeof options === 'object' && options !== null &&
	    options.all;
	return all ? [[{ address: '127.0.0.1', family: 4 }]] :
	    ['127.0.0.1', 4];
}

const realLookup = dns.lookup;
dns.lookup = function (hostname, options, callback) {
	if (typeof options === 'function') {
		callback = options;
		options = {};
	}
	if (typeof hostname === 'string' && EMULATED.test(hostname)) {
		const a = answer(options);
		process.nextTick(() => callback(null, ...a));
		return {};
	}
	return realLookup.call(dns, hostname, options, callback);
};

const realPromise = dns.promises.lookup;
dns.promises.lookup = async function (hostname, options) {
	if (typeof hostname === 'string' && EMULATED.test(hostname)) {
		const a = answer(options);
		return options && options.all ? a[0] :
		    { address: a[0], family: a[1] };
	}
	return realPromise.call(dns.promises, hostname, options);
};
