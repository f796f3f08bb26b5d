// Drives a Piston server with the piston-client package, as its users do: reads
// {"server": ..., "cases": [{"language", "code", "stdin", "args"}]} on stdin and prints
// {"runtimes": [...], "results": [...]} (results in the order of the cases).
import piston from "piston-client";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const spec = JSON.parse(input);
const client = piston({ server: spec.server });
const runtimes = await client.runtimes();
const results = await Promise.all(
  spec.cases.map((c) => client.execute(c.language, c.code, { stdin: c.stdin, args: c.args }))
);
console.log(JSON.stringify({ runtimes, results }));
