const t0 = performance.now();
const { countTokens } = await import('gpt-tokenizer/encoding/cl100k_base');
const t1 = performance.now();
const text = Array.from({length: 2000}, (_, i) => `word${i % 97} lorem ipsum, dolor sit amet ${i}.`).join(' ');
let n = 0; const t2 = performance.now();
for (let i = 0; i < 200; i++) n += countTokens(text + i);
const t3 = performance.now();
console.log(JSON.stringify({lib:'gpt-tokenizer', loadMs:+(t1-t0).toFixed(1), chars:text.length, tokens:countTokens(text), msPerCall:+((t3-t2)/200).toFixed(3), rssMiB: +(process.memoryUsage().rss/2**20).toFixed(1), heapMiB:+(process.memoryUsage().heapUsed/2**20).toFixed(1)}));
