// Drives a running `tether serve` with the official OpenAI Node SDK (the `openai` npm package,
// pinned in package.json beside this file). serve's TestOpenAINodeSDK runs it and checks what
// it prints against engine.Generate and the server's own answers.
//
//   NODE_PATH=.tether/npm/node_modules node conformance.cjs BASE_URL SPEC_JSON
//
// SPEC_JSON: {"model", "messages", "prompt", "max_tokens", "temperature", "seed", "steering",
// "bad_steering"}. Prints one JSON object: the SDK's version, a chat completion, a streamed
// chat completion with include_usage, a completion, a chat completion with the steering field
// passed the JS way (extra body fields are sent as they are), and the errors the SDK throws for
// an unknown model and for bad steering.
'use strict';

const sdk = require('openai');
const OpenAI = sdk.OpenAI || sdk.default || sdk;

async function main() {
  const [baseURL, specJSON] = process.argv.slice(2);
  if (!baseURL || !specJSON) {
    throw new Error('usage: node conformance.cjs BASE_URL SPEC_JSON');
  }
  const spec = JSON.parse(specJSON);
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
  const base = { model: spec.model, max_tokens: spec.max_tokens, temperature: spec.temperature, seed: spec.seed };
  const out = { sdk_version: require('openai/version').VERSION };

  const chat = await client.chat.completions.create({ ...base, messages: spec.messages });
  out.chat = {
    object: chat.object,
    content: chat.choices[0].message.content,
    role: chat.choices[0].message.role,
    finish_reason: chat.choices[0].finish_reason,
    usage: chat.usage,
  };

  const stream = await client.chat.completions.create({
    ...base, messages: spec.messages, stream: true, stream_options: { include_usage: true },
  });
  const streamed = { content: '', chunks: 0, role: null, finish_reason: null, usage: null, usage_chunk_choices: null };
  for await (const chunk of stream) {
    streamed.chunks++;
    if (chunk.usage) {
      streamed.usage = chunk.usage;
      streamed.usage_chunk_choices = chunk.choices.length;
    }
    for (const c of chunk.choices) {
      if (c.delta.role) streamed.role = c.delta.role;
      if (c.delta.content) streamed.content += c.delta.content;
      if (c.finish_reason) streamed.finish_reason = c.finish_reason;
    }
  }
  out.stream = streamed;

  const completion = await client.completions.create({ ...base, prompt: spec.prompt });
  out.completion = {
    object: completion.object,
    text: completion.choices[0].text,
    finish_reason: completion.choices[0].finish_reason,
    usage: completion.usage,
  };

  // The JS SDK sends fields it does not know as they are: no extra_body needed.
  const steered = await client.chat.completions.create({ ...base, messages: spec.messages, steering: spec.steering });
  out.steered = {
    content: steered.choices[0].message.content,
    projections: steered.choices[0].projections || null,
    projection_summary: steered.choices[0].projection_summary || null,
  };

  out.errors = {};
  const failing = {
    unknown_model: { ...base, model: 'no-such-model', messages: spec.messages },
    bad_steering: { ...base, messages: spec.messages, steering: spec.bad_steering },
  };
  for (const [name, params] of Object.entries(failing)) {
    try {
      await client.chat.completions.create(params);
      out.errors[name] = { thrown: false };
    } catch (e) {
      out.errors[name] = {
        thrown: true,
        api_error: e instanceof OpenAI.APIError,
        class: e.constructor.name,
        status: e.status === undefined ? null : e.status,
        message: e.error && e.error.message !== undefined ? e.error.message : null,
        type: e.type === undefined ? null : e.type,
        code: e.code === undefined ? null : e.code,
        param: e.param === undefined ? null : e.param,
      };
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
