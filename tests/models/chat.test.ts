import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatTemplate, ChatTemplateError } from '../../models/chat.js';
import { ggufTokenizer, TOKEN_TYPE } from '../../models/tokenizers/gguf.js';

// The chat templates of TinyLlama-1.1B-Chat-v1.0 (zephyr style), Llama-3.2-Instruct,
// Qwen2.5-Instruct and SmolLM2-Instruct, as their tokenizer_config.json files (and the
// GGUF files converted from them, `tokenizer.chat_template`) carry them.
const TINYLLAMA = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
const LLAMA32 = "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n{%- endif %}\n{%- if not tools_in_user_message is defined %}\n    {%- set tools_in_user_message = true %}\n{%- endif %}\n{%- if not date_string is defined %}\n    {%- if strftime_now is defined %}\n        {%- set date_string = strftime_now(\"%d %b %Y\") %}\n    {%- else %}\n        {%- set date_string = \"26 Jul 2024\" %}\n    {%- endif %}\n{%- endif %}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n\n{#- This block extracts the system message, so we can slot it into the right place. #}\n{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n\n{#- System message #}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{%- if tools is not none %}\n    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{%- if tools is not none and not tools_in_user_message %}\n    {{- \"You have access to the following functions. To call a function, please respond with JSON for a function call.\" }}\n    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.' }}\n    {{- \"Do not use variables.\\n\\n\" }}\n    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n        {{- \"\\n\\n\" }}\n    {%- endfor %}\n{%- endif %}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n\n{#- Custom tools are passed in a user message with some extra guidance #}\n{%- if tools_in_user_message and not tools is none %}\n    {#- Extract the first user message so we can plug it in here #}\n    {%- if messages | length != 0 %}\n        {%- set first_user_message = messages[0]['content']|trim %}\n        {%- set messages = messages[1:] %}\n    {%- else %}\n        {{- raise_exception(\"Cannot put tools in the first user message when there's no first user message!\") }}\n{%- endif %}\n    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n    {{- \"Given the following functions, please respond with a JSON for a function call \" }}\n    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}\n    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.' }}\n    {{- \"Do not use variables.\\n\\n\" }}\n    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n        {{- \"\\n\\n\" }}\n    {%- endfor %}\n    {{- first_user_message + \"<|eot_id|>\"}}\n{%- endif %}\n\n{%- for message in messages %}\n    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n    {%- elif 'tool_calls' in message %}\n        {%- if not message.tool_calls|length == 1 %}\n            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}\n        {%- endif %}\n        {%- set tool_call = message.tool_calls[0].function %}\n        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n        {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n        {{- '\"parameters\": ' }}\n        {{- tool_call.arguments | tojson }}\n        {{- \"}\" }}\n        {{- \"<|eot_id|>\" }}\n    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n        {%- if message.content is mapping or message.content is iterable %}\n            {{- message.content | tojson }}\n        {%- else %}\n            {{- message.content }}\n        {%- endif %}\n        {{- \"<|eot_id|>\" }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";
const QWEN25 = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";
const SMOLLM2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const CONVERSATION = [
  { role: 'system', content: 'You are a friendly chatbot.' },
  { role: 'user', content: 'Hello! Wie geht\'s? 🙂' },
];
// noon UTC is the same calendar day in every time zone from UTC-11 to UTC+11
const NOW = () => new Date('2025-03-05T12:00:00Z');

const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');

/** A SentencePiece vocabulary of single characters with byte fallback, Llama 2's special ids. */
function llamaVocab(template: string) {
  const chars = [...new Set(Array.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?\'|<>/'))];
  const tokens = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${hex(b)}>`), ...chars.map((c) => c.replace(' ', '\u2581'))];
  const types = tokens.map((t, i) => (i === 0 ? TOKEN_TYPE.unknown : i <= 2 ? TOKEN_TYPE.control : i < 259 ? TOKEN_TYPE.byte : TOKEN_TYPE.normal));
  return ggufTokenizer(new Map<string, unknown>([
    ['tokenizer.ggml.model', 'llama'],
    ['tokenizer.ggml.tokens', tokens],
    ['tokenizer.ggml.scores', tokens.map(() => 0)],
    ['tokenizer.ggml.token_type', types],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
    ['tokenizer.ggml.unknown_token_id', 0],
    ['tokenizer.chat_template', template],
  ]), 'tinyllama.gguf');
}

/** A byte-level vocabulary (GPT-2's byte alphabet, no merges) followed by the given control tokens. */
function bpeVocab(pre: string, specials: string[], ids: Record<string, string>, template: string) {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  const bytes = Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + n++));
  const tokens = [...bytes, ...specials];
  const metadata: Record<string, unknown> = {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': pre,
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': tokens.map((_, i) => (i < 256 ? TOKEN_TYPE.normal : TOKEN_TYPE.control)),
    'tokenizer.ggml.merges': [],
    'tokenizer.chat_template': template,
  };
  for (const [key, token] of Object.entries(ids)) metadata[`tokenizer.ggml.${key}`] = tokens.indexOf(token);
  return { tokenizer: ggufTokenizer(metadata, `${pre}.gguf`), metadata };
}

function checkEncoding(template: ChatTemplate, tokenizer: ReturnType<typeof ggufTokenizer>, prompt: string, bos: boolean) {
  const ids = template.encode(CONVERSATION);
  assert.deepEqual(ids, tokenizer.encode(prompt, { bos }));
  if (tokenizer.addBos) assert.equal(ids.filter((i) => i === tokenizer.bos).length, 1, 'BOS once');
  return ids;
}

test('TinyLlama (zephyr): exact prompt, </s> encoded as EOS, BOS added by the tokenizer, stop on EOS', () => {
  const tokenizer = llamaVocab(TINYLLAMA);
  const template = ChatTemplate.fromMetadata(new Map([['tokenizer.chat_template', TINYLLAMA]]), tokenizer, { now: NOW })!;
  const prompt = template.render(CONVERSATION);
  assert.equal(prompt, '<|system|>\nYou are a friendly chatbot.</s>\n<|user|>\nHello! Wie geht\'s? 🙂</s>\n<|assistant|>\n');
  assert.equal(template.needsBos(prompt), true);
  const ids = checkEncoding(template, tokenizer, prompt, true);
  assert.equal(ids[0], 1);
  assert.equal(ids.filter((i) => i === 2).length, 2, 'both </s> are the EOS id');
  assert.deepEqual(template.stopIds, [2]);
  assert.equal(template.eosToken, '</s>');
  assert.equal(template.render(CONVERSATION, { addGenerationPrompt: false }), '<|system|>\nYou are a friendly chatbot.</s>\n<|user|>\nHello! Wie geht\'s? 🙂</s>\n');
});

test('Llama 3.2: exact prompt with the injected date, BOS written by the template only once, stop on <|eot_id|>', () => {
  const specials = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|eom_id|>'];
  const { tokenizer, metadata } = bpeVocab('llama-bpe', specials, { bos_token_id: '<|begin_of_text|>', eos_token_id: '<|end_of_text|>' }, LLAMA32);
  const template = ChatTemplate.fromMetadata(metadata, tokenizer, { now: NOW })!;
  const prompt = template.render(CONVERSATION);
  assert.equal(prompt,
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
    'Cutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\n' +
    'You are a friendly chatbot.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nHello! Wie geht\'s? 🙂<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n');
  assert.equal(tokenizer.addBos, true, 'llama-bpe adds BOS by default');
  assert.equal(template.needsBos(prompt), false, 'the template wrote <|begin_of_text|> already');
  const ids = checkEncoding(template, tokenizer, prompt, false);
  assert.equal(ids[0], tokenizer.bos);
  assert.equal(ids.filter((i) => i === tokenizer.bos).length, 1);
  assert.equal(ids.filter((i) => i === tokenizer.tokenId('<|eot_id|>')).length, 2);
  assert.deepEqual([...template.stopIds].sort(), [tokenizer.tokenId('<|end_of_text|>')!, tokenizer.tokenId('<|eot_id|>')!].sort());
  // without a system message the template still writes its own system header
  assert.match(template.render([{ role: 'user', content: 'hi' }]), /^<\|begin_of_text\|><\|start_header_id\|>system<\|end_header_id\|>\n\nCutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\n<\|eot_id\|><\|start_header_id\|>user/);
});

test('Qwen2.5 (ChatML): exact prompt, no BOS, control tokens as their ids, stop on <|im_end|>', () => {
  const { tokenizer, metadata } = bpeVocab('qwen2', ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], { bos_token_id: '<|endoftext|>', eos_token_id: '<|im_end|>', padding_token_id: '<|endoftext|>' }, QWEN25);
  const template = ChatTemplate.fromMetadata(metadata, tokenizer, { now: NOW })!;
  const prompt = template.render(CONVERSATION);
  assert.equal(prompt, '<|im_start|>system\nYou are a friendly chatbot.<|im_end|>\n<|im_start|>user\nHello! Wie geht\'s? 🙂<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(template.needsBos(prompt), false);
  const ids = checkEncoding(template, tokenizer, prompt, false);
  const imStart = tokenizer.tokenId('<|im_start|>')!;
  assert.equal(ids[0], imStart);
  assert.equal(ids.filter((i) => i === imStart).length, 3);
  assert.equal(tokenizer.decode(ids), 'system\nYou are a friendly chatbot.\nuser\nHello! Wie geht\'s? 🙂\nassistant\n');
  assert.deepEqual(template.stopIds, [tokenizer.tokenId('<|im_end|>')]);
  assert.equal(template.render([{ role: 'user', content: 'hi' }]),
    '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
});

test('SmolLM2 (ChatML): exact prompt, its default system message, stop on <|im_end|>', () => {
  const { tokenizer, metadata } = bpeVocab('smollm', ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], { bos_token_id: '<|im_start|>', eos_token_id: '<|im_end|>' }, SMOLLM2);
  const template = ChatTemplate.fromMetadata(metadata, tokenizer, { now: NOW })!;
  const prompt = template.render(CONVERSATION);
  assert.equal(prompt, '<|im_start|>system\nYou are a friendly chatbot.<|im_end|>\n<|im_start|>user\nHello! Wie geht\'s? 🙂<|im_end|>\n<|im_start|>assistant\n');
  checkEncoding(template, tokenizer, prompt, false);
  assert.deepEqual(template.stopIds, [tokenizer.tokenId('<|im_end|>')]);
  assert.equal(template.render([{ role: 'user', content: 'hi' }]),
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  // BOS is <|im_start|> here: even a tokenizer that adds BOS must not add it before a prompt that starts with it
  const adding = bpeVocab('smollm', ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], { bos_token_id: '<|im_start|>', eos_token_id: '<|im_end|>' }, SMOLLM2);
  adding.metadata['tokenizer.ggml.add_bos_token'] = true;
  const tok = ggufTokenizer(adding.metadata, 'smollm.gguf');
  assert.equal(new ChatTemplate(SMOLLM2, tok).needsBos(prompt), false);
});

test('template errors say what went wrong', () => {
  const tokenizer = llamaVocab(TINYLLAMA);
  assert.throws(() => new ChatTemplate('{% for message in messages %}{{ message.content }', tokenizer, { source: 'broken.gguf' }),
    (err: unknown) => err instanceof ChatTemplateError && /^broken\.gguf: the chat template does not parse \(/.test(err.message));
  const strict = new ChatTemplate("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ messages[0]['content'] }}", tokenizer, { source: 'gemma.gguf' });
  assert.throws(() => strict.render(CONVERSATION), /gemma\.gguf: the chat template cannot render this conversation: System role not supported/);
  assert.equal(strict.render([{ role: 'user', content: 'hi' }]), 'hi');
  assert.throws(() => strict.render([{ role: 'user', content: 7 } as unknown as { role: string; content: string }]), /message 0 should be \{ role: string, content: string \}/);
  assert.equal(ChatTemplate.fromMetadata(new Map(), tokenizer), undefined);
  assert.throws(() => ChatTemplate.fromMetadata({ 'tokenizer.chat_template': 5 }, tokenizer), /tokenizer\.chat_template should be a string/);
});
