// The spec's Node.js receiver, as a customer would write it with Express.
//
// `node spec_receiver.js SECRET` listens on 127.0.0.1 (a free port), prints {"port": N}, and
// answers POSTs with 200 "OK" when the signature verifies, 401 when it does not, and 500 when
// verification throws (as Express's default error handler would). GET /stats returns what it saw.
// express.json() is played by node's own http module: the body is read whole, decoded as UTF-8
// and JSON.parse'd into req.body; verifySignature is the spec's, word for word.
'use strict';
const crypto = require('crypto');
const http = require('http');

function verifySignature(req, secret) {
  const signature = req.headers['x-attribution-signature'];
  const payload = JSON.stringify(req.body);

  const hmac = crypto.createHmac('sha256', secret);
  hmac.update(payload);
  const expectedSignature = hmac.digest('hex');

  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expectedSignature)
  );
}

const secret = process.argv[2];
const stats = { verified: 0, rejected: 0, errors: [], event_ids: [], amounts: [] };

const server = http.createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    try {
      req.body = JSON.parse(Buffer.concat(chunks).toString('utf8'));  // express.json()
      if (!verifySignature(req, secret)) {
        stats.rejected += 1;
        res.writeHead(401);
        res.end('Invalid signature');
        return;
      }
    } catch (err) {
      stats.errors.push(String(err));
      res.writeHead(500);
      res.end('Internal Server Error');
      return;
    }
    stats.verified += 1;
    stats.event_ids.push(req.body.id);
    res.writeHead(200);
    res.end('OK');
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
