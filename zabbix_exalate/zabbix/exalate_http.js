// Exalate by HTTP: reads an Exalate node from the Zabbix server or proxy and returns the document of
// `zabbix-exalate collect` (docs/collect.md), field for field, so the same dependent items split it.
// Zabbix's JavaScript engine (Duktape, ES5): var only, no arrow functions. `value` holds the item's parameters.
// zabbix/httpscript.py fills SPEC from metrics.py (the fields, paths and bounds live there) for the generator.
var SPEC = {/* filled by the generator */};

var params = JSON.parse(value);
var started = Date.now();

function param(name) {
    var v = params[name];
    // An undefined macro reaches the script as its own name: treat it as not set.
    return typeof v === 'string' && v.length && v.indexOf('{$') !== 0 ? v : '';
}

function Failure(message, kind) {
    this.message = message;
    this.kind = kind;  // 'auth', 'notfound', 'timeout', 'late', 'large', 'bad'
}

function fail(message, kind) {
    throw new Failure(message, kind || 'bad');
}

// --- configuration ----------------------------------------------------------------------------------

function seconds(text) {
    var m = /^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$/.exec(text || '');
    if (!m) {
        return 0;
    }
    return parseFloat(m[1]) * ({'': 1, s: 1, m: 60, h: 3600})[m[2]];
}

var cfg = {
    url: param('url').replace(/\/+$/, ''),
    monitor_url: param('monitor_url'),
    jwt_secret: param('jwt_secret'),
    jwt_user: param('jwt_user'),
    jwt_issuer: param('jwt_issuer') || 'EXALATE',
    jwt_exp_unit: param('jwt_exp_unit') || 'seconds',
    jwt_header: param('jwt_header') || 'X-exalate-jwt',
    token: param('token'),
    user: param('user'),
    password: param('password'),
    monitor_user: param('monitor_user'),
    monitor_password: param('monitor_password'),
    login_user: param('login_user'),
    login_password: param('login_password'),
    ping_check: param('ping_check') || 'outgoing',
    timeout: seconds(param('timeout')) || 10
};

function checkUrl(url, macro) {
    // Never echoed: a URL may hold credentials.
    var m = /^(https?):\/\/([^\/?#]*)/.exec(url);
    if (!m || !m[2]) {
        throw 'the macro ' + macro + ' is not an http:// or https:// address with a host name: set it to the '
            + "node's base URL";
    }
    if (m[2].indexOf('@') >= 0) {
        throw 'the macro ' + macro + ' holds credentials: move them to the credential macros and remove them '
            + 'from the URL';
    }
    if (/[\s\x00-\x1f\x7f]/.test(url)) {
        throw 'the macro ' + macro + ' contains spaces or control characters';
    }
}

checkUrl(cfg.url, 'EXALATE.URL');
if (cfg.monitor_url) {
    checkUrl(cfg.monitor_url, 'EXALATE.MONITOR.URL');
}
if (!(cfg.jwt_secret || cfg.token || cfg.login_password || cfg.user || cfg.monitor_user)) {
    throw 'no credentials: set EXALATE.JWT.SECRET, EXALATE.TOKEN, EXALATE.LOGIN.PASSWORD, EXALATE.USER or '
        + 'EXALATE.MONITOR.USER on the host (the secrets as secret macros)';
}
if (cfg.jwt_exp_unit !== 'seconds' && cfg.jwt_exp_unit !== 'milliseconds') {
    throw 'the macro EXALATE.JWT.EXP.UNIT is neither seconds nor milliseconds';
}
if (cfg.ping_check !== 'discover' && !SPEC.node_fields.hasOwnProperty(cfg.ping_check)) {
    throw 'the macro EXALATE.PING.CHECK is none of ' + Object.keys(SPEC.node_fields).join(', ') + ', discover';
}

// The poll's own deadline: a request in flight cannot be cut short (HttpRequest's timeout is the item's), so
// no request starts unless a little time is left, and the document is returned within the item's timeout.
var deadline = started + cfg.timeout * 1000 - SPEC.margin_ms;
var late = 'no complete answer within the timeout of ' + cfg.timeout + ' s';

// --- text: bytes, hashes, masking, one line ---------------------------------------------------------

function utf8(text) {
    var bytes = [];
    for (var i = 0; i < text.length; i++) {
        var c = text.charCodeAt(i);
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < text.length) {
            var low = text.charCodeAt(i + 1);
            if (low >= 0xDC00 && low <= 0xDFFF) {
                c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
                i++;
            }
        }
        if (c < 0x80) {
            bytes.push(c);
        }
        else if (c < 0x800) {
            bytes.push(0xC0 | c >> 6, 0x80 | c & 63);
        }
        else if (c < 0x10000) {
            bytes.push(0xE0 | c >> 12, 0x80 | c >> 6 & 63, 0x80 | c & 63);
        }
        else {
            bytes.push(0xF0 | c >> 18, 0x80 | c >> 12 & 63, 0x80 | c >> 6 & 63, 0x80 | c & 63);
        }
    }
    return bytes;
}

var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function base64(bytes) {
    var out = '';
    for (var i = 0; i < bytes.length; i += 3) {
        var n = bytes[i] << 16 | (bytes[i + 1] || 0) << 8 | (bytes[i + 2] || 0);
        out += B64.charAt(n >> 18 & 63) + B64.charAt(n >> 12 & 63)
            + (i + 1 < bytes.length ? B64.charAt(n >> 6 & 63) : '=') + (i + 2 < bytes.length ? B64.charAt(n & 63) : '=');
    }
    return out;
}

function base64url(bytes) {
    return base64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function hexBytes(hex) {
    var bytes = [];
    for (var i = 0; i < hex.length; i += 2) {
        bytes.push(parseInt(hex.substr(i, 2), 16));
    }
    return bytes;
}

// SHA-256 of bytes: the engine's sha256() hashes text, and a connection's tag hashes a digest (raw bytes).
var K = [];
(function () {
    var found = 0;
    for (var n = 2; found < 64; n++) {
        var prime = true;
        for (var d = 2; d * d <= n; d++) {
            if (n % d === 0) {
                prime = false;
                break;
            }
        }
        if (prime) {
            K.push(Math.floor((Math.pow(n, 1 / 3) % 1) * 4294967296) | 0);
            found++;
        }
    }
})();

function sha256Bytes(bytes) {
    var h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    var data = bytes.slice();
    var bits = bytes.length * 8;
    data.push(0x80);
    while (data.length % 64 !== 56) {
        data.push(0);
    }
    var high = Math.floor(bits / 4294967296);
    data.push(high >>> 24 & 255, high >>> 16 & 255, high >>> 8 & 255, high & 255);
    data.push(bits >>> 24 & 255, bits >>> 16 & 255, bits >>> 8 & 255, bits & 255);
    var w = [];
    for (var block = 0; block < data.length; block += 64) {
        for (var t = 0; t < 64; t++) {
            if (t < 16) {
                var j = block + 4 * t;
                w[t] = data[j] << 24 | data[j + 1] << 16 | data[j + 2] << 8 | data[j + 3];
            }
            else {
                var x = w[t - 15], y = w[t - 2];
                var s0 = (x >>> 7 | x << 25) ^ (x >>> 18 | x << 14) ^ x >>> 3;
                var s1 = (y >>> 17 | y << 15) ^ (y >>> 19 | y << 13) ^ y >>> 10;
                w[t] = w[t - 16] + s0 + w[t - 7] + s1 | 0;
            }
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
        for (t = 0; t < 64; t++) {
            var S1 = (e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7);
            var t1 = k + S1 + (e & f ^ ~e & g) + K[t] + w[t] | 0;
            var S0 = (a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10);
            var t2 = S0 + (a & b ^ a & c ^ b & c) | 0;
            k = g;
            g = f;
            f = e;
            e = d + t1 | 0;
            d = c;
            c = b;
            b = a;
            a = t1 + t2 | 0;
        }
        h = [h[0] + a | 0, h[1] + b | 0, h[2] + c | 0, h[3] + d | 0, h[4] + e | 0, h[5] + f | 0, h[6] + g | 0,
            h[7] + k | 0];
    }
    var out = [];
    for (var i = 0; i < 8; i++) {
        out.push(h[i] >>> 24 & 255, h[i] >>> 16 & 255, h[i] >>> 8 & 255, h[i] & 255);
    }
    return out;
}

function hex(bytes) {
    var out = '';
    for (var i = 0; i < bytes.length; i++) {
        out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
    }
    return out;
}

// Secrets in every form they take on the wire (as masking.py's), longest first; tokens join once obtained.
// dataForms: those of secrets long enough to mask in the node's names and states (masking.py's DATA_SHORTEST).
var forms = [];
var dataForms = [];

function addSecret(secret) {
    if (!secret || secret.length < SPEC.mask_shortest) {
        return;
    }
    var json = JSON.stringify(secret).slice(1, -1);
    var quoted = quote(secret);
    [secret, json, quoted, quoted.replace(/%20/g, '+'), base64(utf8(secret))].forEach(function (form) {
        if (form.length >= SPEC.mask_shortest && forms.indexOf(form) < 0) {
            forms.push(form);
        }
        if (form.length >= SPEC.mask_shortest && secret.length >= SPEC.data_shortest && dataForms.indexOf(form) < 0) {
            dataForms.push(form);
        }
    });
    forms.sort(function (a, b) { return b.length - a.length; });
    dataForms.sort(function (a, b) { return b.length - a.length; });
}

function addBasic(user, password) {
    if (password) {
        addSecret(base64(utf8(user + ':' + password)));
        addSecret(base64(basicBytes(user + ':' + password)));
    }
}

[cfg.jwt_secret, cfg.token, cfg.password, cfg.monitor_password, cfg.login_password].forEach(addSecret);
addBasic(cfg.user, cfg.password);
addBasic(cfg.monitor_user, cfg.monitor_password);

function mask(text, data) {
    var these = data ? dataForms : forms;
    for (var i = 0; i < these.length; i++) {
        if (text.indexOf(these[i]) >= 0) {
            text = text.split(these[i]).join(SPEC.mask);
        }
    }
    return text;
}

// Characters Python's str.isprintable() refuses, well enough for Exalate's texts: controls, format characters,
// separators other than the space.
var UNPRINTABLE = /[\x00-\x1f\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff\ufff9-\ufffb]/;

function printable(text) {
    var out = '';
    for (var i = 0; i < text.length; i++) {
        var ch = text.charAt(i);
        if (!UNPRINTABLE.test(ch)) {
            out += ch;
            continue;
        }
        var c = text.charCodeAt(i);
        out += ({9: '\\t', 10: '\\n', 13: '\\r'})[c] || (c < 0x100 ? '\\x' + ('0' + c.toString(16)).slice(-2)
            : '\\u' + ('000' + c.toString(16)).slice(-4));
    }
    return out;
}

function cut(text, width) {
    return text.length <= width ? text : text.slice(0, width - 3) + '...';
}

// A text a server chose, as one line: line breaks and tabs become spaces, other control characters go.
function oneLine(text, width) {
    var kept = '';
    for (var i = 0; i < text.length; i++) {
        var ch = text.charAt(i);
        if (/\s/.test(ch) || !UNPRINTABLE.test(ch)) {
            kept += ch;
        }
    }
    return cut(kept.split(/\s+/).filter(function (w) { return w.length; }).join(' '), width);
}

function outside(text, width) {
    var line = mask(text).split(/\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]/)[0] || '';
    return cut(printable(line.replace(/^\s+|\s+$/g, '')), width || 200);
}

// --- URLs -------------------------------------------------------------------------------------------

function quote(text) {
    return encodeURIComponent(text).replace(/[!'()*~]/g, function (c) {
        return '%' + c.charCodeAt(0).toString(16).toUpperCase();
    });
}

function keyForm(name) {
    var encoded;
    try {
        encoded = quote(name);
    }
    catch (e) {  // a lone surrogate: not UTF-8 text
        encoded = quote(name.replace(/[\ud800-\udfff]/g, '\ufffd'));
    }
    return /^\.+$/.test(encoded) ? encoded.replace(/\./g, '%2E') : encoded;
}

function show(url) {  // never the query, which could carry a secret
    return url.replace(/[?#].*$/, '');
}

function host(url) {
    return (/^[a-z]+:\/\/([^\/?#]*)/i.exec(url) || ['', url])[1];
}

// --- HTTP -------------------------------------------------------------------------------------------

var http = new HttpRequest();
var token = null;  // the run's JWT, minted or from logging in

// Basic auth's bytes: Latin-1 where it suffices, as the command sends them (requests), else UTF-8.
function basicBytes(text) {
    var bytes = [];
    for (var i = 0; i < text.length; i++) {
        if (text.charCodeAt(i) > 255) {
            return utf8(text);
        }
        bytes.push(text.charCodeAt(i));
    }
    return bytes;
}

function basic(user, password, macros) {
    return {label: "basic auth as '" + user + "' (macros " + macros + ')',
        headers: {Authorization: 'Basic ' + base64(basicBytes(user + ':' + (password || '')))}};
}

function jwt(what) {
    var headers = {};
    headers[cfg.jwt_header] = obtained(what);
    return {label: what.label + ', sent as ' + cfg.jwt_header, headers: headers};
}

var STATIC = {label: 'the token of the macro EXALATE.TOKEN', get: function () { return cfg.token; }};
var MINTED = {label: "a JWT signed with the macro EXALATE.JWT.SECRET for user '" + cfg.jwt_user + "'", get: mint};
var LOGIN = {label: "a JWT from logging in as '" + cfg.login_user + "' (macro EXALATE.LOGIN.PASSWORD)", get: logIn};

function credential(api) {
    if (api === 'monitor' && cfg.monitor_user) {
        return basic(cfg.monitor_user, cfg.monitor_password, 'EXALATE.MONITOR.USER/EXALATE.MONITOR.PASSWORD');
    }
    var hasJwt = cfg.jwt_secret || cfg.token || cfg.login_password;
    if (cfg.user && (api === 'monitor' || api === 'queue' || !hasJwt)) {
        return basic(cfg.user, cfg.password, 'EXALATE.USER/EXALATE.PASSWORD');
    }
    if (cfg.token) {
        return jwt(STATIC);
    }
    if (cfg.jwt_secret) {
        return jwt(MINTED);
    }
    if (cfg.login_password) {
        return jwt(LOGIN);
    }
    return basic(cfg.monitor_user, cfg.monitor_password, 'EXALATE.MONITOR.USER/EXALATE.MONITOR.PASSWORD');
}

function obtained(what) {
    if (what === STATIC) {
        return cfg.token;
    }
    if (!token) {
        token = what.get();
        addSecret(token);
    }
    return token;
}

function mint() {
    var now = Date.now() / 1000;
    var exp = Math.floor((now + SPEC.jwt_ttl) * (cfg.jwt_exp_unit === 'milliseconds' ? 1000 : 1));
    var head = base64url(utf8(JSON.stringify({alg: 'HS256', typ: 'JWT'})));
    var claims = base64url(utf8(JSON.stringify({iss: cfg.jwt_issuer, user: cfg.jwt_user, exp: exp})));
    return head + '.' + claims + '.' + base64url(hexBytes(hmac('sha256', cfg.jwt_secret, head + '.' + claims)));
}

function logIn() {
    var url = cfg.url + SPEC.api_root + SPEC.authenticate_path;
    var answer = send('POST', url, {label: 'the macro EXALATE.LOGIN.PASSWORD', headers: {}},
        JSON.stringify({authProtocol: 'basic', user: cfg.login_user, password: cfg.login_password}));
    if (answer.status === 401 || answer.status === 403) {
        fail('logging in at ' + show(url) + ' failed (HTTP ' + answer.status + '): check the macros '
            + 'EXALATE.LOGIN.USER and EXALATE.LOGIN.PASSWORD', 'auth');
    }
    raiseForStatus(answer, url, 'the macro EXALATE.LOGIN.PASSWORD');
    var found = answer.header('x-exalate-jwt');
    if (!found) {
        var data = answer.body;
        try {
            data = JSON.parse(answer.body);
        }
        catch (e) {
            data = answer.body.replace(/^\s+|\s+$/g, '');
        }
        if (data && typeof data === 'object') {
            data = ['token', 'jwt', 'accessToken', 'access_token'].map(function (k) {
                return typeof data[k] === 'string' ? data[k] : null;
            }).filter(function (t) { return t; })[0];
        }
        found = typeof data === 'string' && data.split('.').length === 3 && data.indexOf(' ') < 0 ? data : null;
    }
    if (!found) {
        fail('logging in at ' + show(url) + ' returned no token (neither an X-Exalate-Jwt header nor a token in '
            + 'the body)');
    }
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(found) || found.length > 16384) {
        fail('logging in at ' + show(url) + ' returned a token that is not a JWT (characters a header cannot '
            + "carry, or not three base64url parts): report it to the node's admin");
    }
    return found;
}

// One request, sequential (Zabbix's JavaScript has no other kind). Its answer: status, body, header(name).
function send(method, url, credential, body) {
    if (Date.now() >= deadline) {
        fail(late, 'late');
    }
    http.clearHeader();
    http.addHeader('Accept: application/json');
    http.addHeader('User-Agent: zabbix-exalate-http');
    for (var name in credential.headers) {
        http.addHeader(name + ': ' + credential.headers[name]);
    }
    if (body !== undefined) {
        http.addHeader('Content-Type: application/json');
    }
    var text;
    try {
        text = method === 'POST' ? http.post(url, body) : http.get(url);
    }
    catch (e) {
        transportFailure(String(e && e.message || e), url);
    }
    var headers = http.getHeaders() || {};
    var answer = {status: http.getStatus(), body: text === null || text === undefined ? '' : String(text),
        header: function (wanted) {
            for (var h in headers) {
                if (h.toLowerCase() === wanted) {
                    return String(headers[h]);
                }
            }
            return '';
        }};
    return answer;
}

function transportFailure(error, url) {
    if (/alloc|memory/i.test(error)) {
        fail('the answer of ' + show(url) + ' is ' + SPEC.too_large, 'large');
    }
    if (/execution timeout/i.test(error)) {
        fail(late, 'late');
    }
    if (/Timeout was reached/i.test(error)) {
        fail(show(url) + ' did not answer within the timeout of ' + cfg.timeout + ' s: is the node overloaded? '
            + 'raise the macro EXALATE.HTTP.TIMEOUT if it is just slow', 'timeout');
    }
    if (/partial file|transfer closed|outstanding read data/i.test(error)) {
        fail('the answer was cut off before its end: the node or a proxy closed the connection mid-way');
    }
    if (/resolve host/i.test(error)) {
        fail('cannot connect to ' + host(url) + ': the host name does not resolve (DNS): check the macro '
            + 'EXALATE.URL', 'unreachable');
    }
    if (/connect to server|Connection refused/i.test(error)) {
        fail('cannot connect to ' + host(url) + ': connection refused: nothing listens on that port, or the node '
            + 'is down', 'unreachable');
    }
    if (/SSL|certificate/i.test(error)) {
        fail('TLS with ' + host(url) + ' failed: its certificate is not trusted by the Zabbix server or proxy, or '
            + 'it does not speak TLS on that port', 'unreachable');
    }
    fail('request to ' + host(url) + ' failed: ' + outside(error.replace(/^Error: /, ''), 120), 'unreachable');
}

function raiseForStatus(answer, url, label) {
    var status = answer.status;
    if (status === 200) {
        if (/html/i.test(answer.header('content-type'))) {
            fail(show(url) + ' answered with an HTML page instead of JSON (a login page or a proxy\'s error '
                + 'page?): check the macro EXALATE.URL and the credentials');
        }
        return;
    }
    if (status === 401 || status === 403) {
        fail(show(url) + ' answered HTTP ' + status + ': the credentials ' + (status === 401 ? 'were rejected'
            : 'were not accepted (not authenticated or not allowed)') + '; used ' + label, 'auth');
    }
    if (status >= 300 && status < 400) {
        var target = outside(answer.header('location') || '?');
        fail(/login/i.test(target) ? show(url) + ' redirected to a login page (' + target + '): the credentials '
            + 'were not accepted or the macro EXALATE.URL points to a web UI'
            : show(url) + ' redirected (HTTP ' + status + ') to ' + target + ': set the macro EXALATE.URL to the '
            + 'address it redirects to');
    }
    if (status >= 500) {
        // HttpRequest gives no reason phrase: the standard one, as collect shows the node's.
        var phrase = {500: ' Internal Server Error', 502: ' Bad Gateway', 503: ' Service Unavailable',
            504: ' Gateway Timeout'}[status] || '';
        fail(show(url) + ' answered HTTP ' + status + phrase + ': the node has a problem; see the Exalate/Jira log '
            + 'on the node', 'server');
    }
    if (status === 404) {
        fail(show(url) + ' does not exist (HTTP 404): check the macro EXALATE.URL (the node\'s base URL) and that '
            + 'this Exalate version has this endpoint');
    }
    if (status === 0) {
        fail(show(url) + ' gave no HTTP answer');
    }
    fail(show(url) + ' answered HTTP ' + status + ': ' + (outside(answer.body) || '(empty body)'));
}

function get(url, api, connection, missingOk) {
    var used = credential(api);
    var answer = send('GET', url, used);
    if (answer.status === 404 && missingOk) {
        return answer;
    }
    if (answer.status === 400 && connection !== undefined) {
        var said = answer.body.slice(0, 4096);
        if (said.toLowerCase().indexOf('not found') >= 0) {
            fail("connection '" + printable(connection) + "' not found on " + host(url) + ': it may have been '
                + 'removed or renamed on the other side; check the connection in Exalate and rediscover', 'notfound');
        }
        fail(show(url) + ' refused the request (HTTP 400): ' + (outside(said) || '(empty body)'));
    }
    raiseForStatus(answer, url, used.label);
    return answer;
}

// The body as JSON, within what the engine can hold: Duktape's heap is 64 MB, and a body of small objects
// takes ten times its size once parsed.
function parse(answer, url) {
    var what = 'the answer of ' + show(url);
    if (answer.body.length > SPEC.max_body) {
        fail(what + ' is ' + answer.body.length + ' characters, ' + SPEC.too_large, 'large');
    }
    try {
        return JSON.parse(answer.body);
    }
    catch (e) {
        if (/alloc|memory/i.test(String(e))) {
            fail(what + ' is ' + SPEC.too_large, 'large');
        }
        if (/^\s*</.test(answer.body)) {
            fail(what + ' is an HTML page, not JSON (a login or error page?): check the macro EXALATE.URL and the '
                + 'credentials');
        }
        fail(what + ' is not valid JSON (' + cut(String(e.message || e), 120) + ') after ' + answer.body.length
            + ' characters');
    }
}

function describe(data) {
    return data === undefined ? 'empty' : Array.isArray(data) ? 'a JSON array'
        : data !== null && typeof data === 'object' ? 'a JSON object' : 'a single JSON value';
}

function isCount(v) {
    return typeof v === 'number' && v % 1 === 0 && v >= 0;
}

function exact(v, what, name) {
    // A double holds whole numbers exactly up to 2^53: past that the value would be a guess.
    if (typeof v === 'number' && Math.abs(v) > 9007199254740991) {
        fail(what + " has '" + name + "' = " + v + ', a number ' + SPEC.too_large, 'large');
    }
    return v;
}

// --- reads ------------------------------------------------------------------------------------------

function urlFor(metric, connection) {
    if (metric.api === 'monitor' && cfg.monitor_url) {
        return cfg.monitor_url;
    }
    if (connection === undefined) {
        return cfg.url + SPEC.api_root + metric.path;
    }
    if (connection.split('/').some(function (p) { return p === '.' || p === '..'; })) {
        fail("the connection name '" + printable(connection) + "' has a path segment \".\" or \"..\", which HTTP "
            + 'clients resolve as navigation: its queues cannot be asked for by name; rename the connection in '
            + 'Exalate');
    }
    return cfg.url + SPEC.api_root + metric.path.replace('{connection}', keyForm(connection));
}

function readNumber(metric) {
    var url = urlFor(metric);
    var what = 'the answer of ' + show(url);
    var data = parse(get(url, metric.api), url);
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
        fail(what + ' is ' + describe(data) + " where the API promises a JSON object with '" + metric.number + "'");
    }
    if (!data.hasOwnProperty(metric.number)) {
        fail(what + " has no '" + metric.number + "' field");
    }
    var v = exact(data[metric.number], what, metric.number);
    if (!isCount(v) || v > SPEC.max_count) {
        fail(what + " has '" + metric.number + "' = " + cut(JSON.stringify(v), 40) + ', not a count');
    }
    return v;
}

function reasonOf(v) {
    if (typeof v !== 'string' || !v.replace(/^\s+|\s+$/g, '')) {
        return SPEC.no_reason;
    }
    return cut(printable(v.replace(/^\s+|\s+$/g, '')), SPEC.max_reason_length);
}

function readQueue(metric, connection) {
    var url = urlFor(metric, connection);
    var what = 'the answer of ' + show(url);
    var data = parse(get(url, metric.api, connection), url);
    if (!Array.isArray(data)) {
        fail(what + ' is ' + describe(data) + ' where the API promises a JSON array');
    }
    var found = {count: data.length, oldest: null, reasons: {}, distinct: 0, newest: null, rank: null};
    for (var i = 0; i < data.length; i++) {
        var e = data[i];
        if (!e || typeof e !== 'object' || Array.isArray(e)) {
            continue;
        }
        var id = exact(e.syncEventId, what, 'syncEventId');
        id = isCount(id) && typeof id === 'number' && id <= SPEC.max_count ? id : null;
        if (id !== null && (found.oldest === null || id < found.oldest)) {
            found.oldest = id;
        }
        if (!metric.reason_field) {
            continue;
        }
        var reason = reasonOf(e[metric.reason_field]);
        if (!found.reasons.hasOwnProperty(reason) && found.distinct >= SPEC.max_reasons) {
            reason = SPEC.other_reasons;
        }
        if (!found.reasons.hasOwnProperty(reason)) {
            found.distinct++;
            found.reasons[reason] = 0;
        }
        found.reasons[reason]++;
        var rank = id === null ? -1 : id;
        if (found.newest === null || rank >= found.rank) {
            var issue = e.sourceIssueKey && typeof e.sourceIssueKey === 'object' && !Array.isArray(e.sourceIssueKey)
                && typeof e.sourceIssueKey.urn === 'string' ? e.sourceIssueKey.urn : null;
            var message = typeof e[metric.message_field] === 'string' ? e[metric.message_field] : null;
            found.newest = {id: id, issue: issue, reason: reason === SPEC.no_reason ? null : reason, message: message};
            found.rank = rank;
        }
    }
    var fields = {};
    fields[metric.field] = found.count;
    if (found.oldest !== null) {
        fields[metric.oldest] = found.oldest;
    }
    if (metric.reason_field) {
        var reasons = {};
        for (var r in found.reasons) {  // a reason could echo a secret, as a message could
            var shown = text(r, SPEC.max_reason_length);
            reasons[shown] = (reasons[shown] || 0) + found.reasons[r];
        }
        fields[metric.reasons] = reasons;
        if (found.newest) {
            var n = found.newest;
            fields[metric.last] = {id: n.id, issue: text(n.issue, SPEC.max_issue), reason: text(n.reason,
                SPEC.max_reason_length), message: text(n.message, SPEC.max_message)};
        }
    }
    return fields;
}

function text(t, width) {
    return t === null ? null : oneLine(mask(t), width);
}

// Ids past 2^53 (a double cannot hold them) stay their digits: as text through the script, marked, and written back
// as numbers in the document, as collect writes them.
var BIG = '~id' + Math.floor(Math.random() * 1e9) + ':';

function isBig(id) {
    return typeof id === 'string' && id.indexOf(BIG) === 0;
}

function keepBigIds(body) {
    return body.replace(/(^|[^\\])("id"\s*:\s*)(-?\d{16,})(?=\s*[,}\]])/g, function (all, before, key, digits) {
        return before + key + '"' + BIG + digits + '"';
    });
}

function withinIds(digits) {  // up to 10^64, as jsonstream.MAX_ID
    return digits.length <= 64 || digits === '1' + new Array(65).join('0');
}

function compareIds(a, b) {
    if (typeof a === 'number' && typeof b === 'number') {
        return a - b;
    }
    var x = isBig(a) ? a.slice(BIG.length) : String(a), y = isBig(b) ? b.slice(BIG.length) : String(b);
    var sx = x.charAt(0) === '-' ? -1 : 1, sy = y.charAt(0) === '-' ? -1 : 1;
    if (sx !== sy) {
        return sx - sy;
    }
    x = x.replace('-', '');
    y = y.replace('-', '');
    var magnitude = x.length !== y.length ? x.length - y.length : x < y ? -1 : x > y ? 1 : 0;
    return sx * magnitude;
}

function readConnections() {
    var url = cfg.url + SPEC.api_root + SPEC.connections_path;
    var what = 'the answer of ' + show(url);
    var answer = get(url, 'queue', undefined, true);
    if (answer.status === 404) {
        // The agent template's configuration can list the connections instead; macros cannot hold a list.
        fail('this node does not list its connections (' + show(url) + ' answered HTTP 404): the HTTP template '
            + 'needs a node that does; use the agent template, whose configuration can list them');
    }
    answer.body = keepBigIds(answer.body);
    var data = parse(answer, url);
    var list, total = null;
    if (Array.isArray(data)) {
        list = data;
    }
    else if (data && typeof data === 'object') {
        if (!Array.isArray(data.results)) {
            fail(what + " has no list of connections (no 'results' array)");
        }
        list = data.results;
        var t = exact(data.total, what, 'total');
        if (typeof t === 'number' && t % 1 === 0) {
            total = t;
        }
    }
    else {
        fail(what + ' is ' + describe(data) + ' where the API promises the connections');
    }
    var found = [], kept = 0;
    for (var i = 0; i < list.length; i++) {
        var c = list[i];
        if (!c || typeof c !== 'object' || Array.isArray(c)) {
            continue;
        }
        if (found.length >= SPEC.max_connections) {
            fail(what + ' lists more than ' + SPEC.max_connections + ' connections: more than zabbix-exalate '
                + 'watches on one node');
        }
        var name = typeof c.name === 'string' ? keptName(c.name) : null;
        kept += name ? name.name.length : 0;
        if (kept > SPEC.max_names) {
            fail(what + ' lists connections whose names add up to more than ' + SPEC.max_names + ' characters ('
                + found.length + ' connections so far): more than zabbix-exalate holds for one node, a broken or '
                + 'hostile answer');
        }
        var id = isBig(c.id) ? (withinIds(c.id.slice(BIG.length).replace('-', '')) ? c.id : null)
            : typeof c.id === 'string' ? c.id : typeof c.id === 'number' && c.id % 1 === 0 ? c.id : null;
        var comm = c.communication && typeof c.communication === 'object' ? c.communication : {};
        found.push({name: name, id: id, status: typeof c.status === 'string' ? c.status : null,
            remote: typeof comm.remoteUrl === 'string' ? comm.remoteUrl : null});
    }
    if (total !== null && total > found.length) {
        fail(show(url) + ' lists ' + found.length + " of the node's " + total + ' connections (a paged answer, '
            + 'which zabbix-exalate cannot follow yet): report this');
    }
    return listed(found.filter(function (c) { return c.name && c.name.name; }));
}

// --- names (exalate/names.py) -----------------------------------------------------------------------

function keptName(name) {
    if (name.length > SPEC.max_name) {
        return {name: name.slice(0, SPEC.room) + SPEC.cut, digest: sha256Bytes(utf8(name)), long: name.length};
    }
    return {name: name, digest: null};
}

function identity(n) {
    return n.digest ? 'digest:' + hex(n.digest) : 'name:' + n.name;
}

function pyRepr(id) {
    if (id === null) {
        return 'None';
    }
    if (typeof id === 'number' || isBig(id)) {
        return isBig(id) ? id.slice(BIG.length) : String(id);
    }
    var q = id.indexOf("'") >= 0 && id.indexOf('"') < 0 ? '"' : "'";
    return q + printable(id.replace(/\\/g, '\\\\').split(q).join('\\' + q)) + q;
}

function tag(n, again) {
    var whole = n.digest || sha256Bytes(utf8(n.name));
    return hex(sha256Bytes(again === null ? whole : whole.concat([0], utf8(again)))).slice(0, SPEC.tag_length);
}

function idOrder(a, b) {
    function rank(e) {
        return typeof e.id === 'number' || isBig(e.id) ? 0 : typeof e.id === 'string' ? 1 : 2;
    }
    var ra = rank(a), rb = rank(b);
    if (ra !== rb) {
        return ra - rb;
    }
    if (ra === 0 && compareIds(a.id, b.id) !== 0) {
        return compareIds(a.id, b.id);
    }
    if (ra === 1 && a.id !== b.id) {
        return a.id < b.id ? -1 : 1;
    }
    return a.position - b.position;
}

function listed(found) {
    var first = {};
    found.map(function (c, position) { return {position: position, id: c.id, who: identity(c.name)}; })
        .sort(idOrder).forEach(function (e) {
            if (!first.hasOwnProperty(e.who)) {
                first[e.who] = e;
            }
        });
    var out = [], keys = {};
    found.forEach(function (c, position) {
        var f = first[identity(c.name)];
        if (position !== f.position && c.id === f.id && typeof c.id === typeof f.id) {
            return;
        }
        var entry = listedConnection(c, position === f.position ? null : pyRepr(c.id));
        if (!keys.hasOwnProperty(entry.key)) {
            keys[entry.key] = true;
            out.push(entry);
        }
    });
    return out;
}

function listedConnection(c, again) {
    var n = c.name, key;
    if (n.digest || n.name.length > SPEC.shown || again !== null || / \([0-9a-f]{12}\)$/.test(n.name)) {
        var start = keyForm(n.name.slice(0, SPEC.room)).slice(0, SPEC.key_prefix);
        var escape = start.indexOf('%', start.length - 2);
        key = (escape < 0 ? start : start.slice(0, escape)) + SPEC.key_tag + tag(n, again);
    }
    else {
        key = keyForm(n.name);
    }
    var entry = {name: n.name, key: key, id: c.id, status: c.status === null ? 'UNKNOWN' : c.status};
    if (c.remote) {
        entry.remote = c.remote;
    }
    entry.long = n.digest ? n.long : 0;
    return entry;
}

// --- the poll ---------------------------------------------------------------------------------------

function Entry(values) {
    this.values = values || {};
    this.failures = {};
    this.kinds = {};
}

function record(entry, field, read, fields) {
    try {
        var v = read();
        if (fields) {
            var f = fields(v);
            for (var k in f) {
                entry.values[k] = f[k];
            }
        }
        else if (field !== SPEC.connections_field) {
            entry.values[field] = v;
        }
        return v;
    }
    catch (e) {
        if (!(e instanceof Failure)) {
            e = new Failure('internal error of the HTTP template, please report it: ' + outside(String(e), 160),
                'bad');
        }
        entry.failures[field] = e.message;
        entry.kinds[field] = e.kind;
        return null;
    }
}

var node = new Entry();
var connections = null;
var pingField = cfg.ping_check === 'discover' ? SPEC.connections_field : SPEC.node_fields[cfg.ping_check];
var reads = {};
SPEC.node_metrics.forEach(function (m) {
    reads[m.field] = function () { return readNumber(m); };
});
reads[SPEC.connections_field] = readConnections;

function readNode(field) {
    var value = record(node, field, reads[field]);
    if (field === SPEC.connections_field && value !== null) {
        connections = value.map(function (c) { return new Entry(c); });
    }
}

var pingStart = Date.now();
readNode(pingField);
if (!node.failures.hasOwnProperty(pingField)) {
    node.values.ping = 1;
    node.values.response_time = Math.round(Date.now() - pingStart) / 1000;
}
Object.keys(reads).forEach(function (field) {
    if (field !== pingField) {
        readNode(field);
    }
});
(connections || []).forEach(function (entry) {
    var c = entry.values;
    SPEC.connection_metrics.forEach(function (m) {
        if (c.long) {
            entry.failures[m.field] = "this connection's name is " + c.long + ' characters long, more than the '
                + SPEC.max_name + " zabbix-exalate keeps: its queues cannot be asked for (the node's API names a "
                + 'connection by its whole name); give it a shorter name in Exalate';
            entry.kinds[m.field] = 'bad';
            return;
        }
        record(entry, m.field, function () { return readQueue(m, c.name); }, function (f) { return f; });
    });
});

// --- the document, as collect closes it -------------------------------------------------------------

function ordered(entry, order) {
    var out = {};
    order.forEach(function (k) {
        if (entry.values.hasOwnProperty(k)) {
            out[k] = entry.values[k];
        }
    });
    var failures = {}, any = false;
    order.concat(Object.keys(entry.failures)).forEach(function (k) {
        if (entry.failures.hasOwnProperty(k) && !failures.hasOwnProperty(k)) {
            failures[k] = mask(entry.failures[k]);  // a reason may quote what the node chose
            any = true;
        }
    });
    if (any) {
        out.failures = failures;
    }
    return out;
}

Object.keys(reads).forEach(function (field) {
    if (!node.values.hasOwnProperty(field) && !node.failures.hasOwnProperty(field)
            && !(field === SPEC.connections_field && connections !== null)) {
        node.failures[field] = late;
    }
});
if (node.values.ping !== 1) {
    node.values.ping = 0;
    node.failures.ping = node.failures.response_time = node.failures[pingField] || late;
}
node.values[SPEC.credentials_field] = node.values.ping === 1 ? SPEC.accepted
    : node.kinds[pingField] === 'auth' ? SPEC.refused : SPEC.unknown_credentials;
(connections || []).forEach(function (entry) {
    SPEC.connection_metrics.forEach(function (m) {
        if (!entry.values.hasOwnProperty(m.field) && !entry.failures.hasOwnProperty(m.field)) {
            entry.failures[m.field] = late;
        }
    });
    for (var k in entry.kinds) {
        if (entry.kinds[k] === 'notfound') {
            entry.values.status = SPEC.removed;
        }
    }
    // The node's names and states are masked only for secrets of 8 characters or more (masking.py).
    ['name', 'key', 'status'].forEach(function (k) {
        entry.values[k] = mask(entry.values[k], true);
    });
    if (entry.values.remote) {
        entry.values.remote = mask(entry.values.remote);
    }
});

var doc = ordered(node, SPEC.node_order);
if (connections !== null) {
    var failures = doc.failures;
    delete doc.failures;
    doc[SPEC.connections_field] = connections.map(function (entry) { return ordered(entry, SPEC.connection_order); });
    if (failures) {
        doc.failures = failures;
    }
}
return JSON.stringify(doc).split('"' + JSON.stringify(BIG).slice(1, -1)).map(function (part, i) {
    return i === 0 ? part : part.replace(/^(-?\d+)"/, '$1');
}).join('');
