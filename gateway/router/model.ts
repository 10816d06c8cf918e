// The gateway's part of the model, as a Petals client holds it: the head (token embedding,
// final norm, classifier), the tokenizer, and the model's groups. Group k is the manifest's
// k-th block range; a node serves it when its birth declares the group's name and its
// shard names exactly that block range of this model (docs/gateway.md, "Groups").
import { ChatTemplate } from '../../models/chat.js';
import { ModelHead } from '../../models/head.js';
import { GgufTokenizer } from '../../models/tokenizers/gguf.js';
import type { Manifest } from '../../models/shards.js';
import type { Tokenizer } from '../../models/tokenizers/index.js';
import type { MatrixAllocator } from '../../models/weights.js';
import type { HeadWeights, LlamaConfig } from '../../models/types.js';
import type { ModelCard } from '../jobs.js';
import type { ShardRef } from '../registry.js';

export interface ModelGroup {
  /** 0-based position in the pipeline. */
  index: number;
  name: string;
  /** Blocks [from, to) of the model. */
  from: number;
  to: number;
  /** The manifest's sha256 of the block file holding exactly this range. */
  sha256: string;
}

export interface GatewayModelParts {
  /** The model's name: the shard folder's name, as agents announce it. */
  name: string;
  manifest: Manifest;
  /** The head part, or a loader that reads it into the head kernel's memory. */
  head: HeadWeights | ((allocate: MatrixAllocator) => HeadWeights);
  tokenizer: Tokenizer | undefined;
  /** One name per block range; default g1, g2, ... */
  groupNames?: string[];
  createdS: number;
}

export class GatewayModel {
  readonly name: string;
  readonly config: LlamaConfig;
  readonly head: ModelHead;
  readonly tokenizer: Tokenizer | undefined;
  readonly groups: readonly ModelGroup[];
  readonly card: ModelCard;
  /** Token ids that end a generation (BOS and EOS, as `heliomesh model generate` stops; a template's turn ends). */
  readonly stopIds: readonly number[];
  /** The model's own chat template (GGUF tokenizer.chat_template), when it has one. */
  readonly chatTemplate: ChatTemplate | undefined;

  constructor(parts: GatewayModelParts) {
    const { manifest } = parts;
    const names = parts.groupNames ?? manifest.blocks.map((_, i) => `g${i + 1}`);
    if (names.length !== manifest.blocks.length) {
      throw new Error(`model.groups names ${names.length} groups, but the manifest has ${manifest.blocks.length} block ranges ` +
        `(${manifest.blocks.map((b) => `${b.from}-${b.to - 1}`).join(', ')}); give one name per range`);
    }
    if (new Set(names).size !== names.length) throw new Error(`model.groups has a repeated name: ${names.join(', ')}`);
    this.name = parts.name;
    this.config = { ...manifest.architecture };
    this.head = new ModelHead(this.config, parts.head);
    this.tokenizer = parts.tokenizer;
    this.groups = manifest.blocks.map((b, index) => ({ index, name: names[index]!, from: b.from, to: b.to, sha256: b.sha256 }));
    this.card = { id: parts.name, contextLength: this.config.seqLen, vocabSize: this.config.vocabSize, createdS: parts.createdS };
    const tok = parts.tokenizer;
    this.chatTemplate = tok instanceof GgufTokenizer && tok.chatTemplate
      ? new ChatTemplate(tok.chatTemplate, tok, { source: `${parts.name}: tokenizer.chat_template` })
      : undefined;
    // Without a tokenizer, BOS is id 1 by the llama2.c convention and ends a story. A GGUF
    // tokenizer names its own stop ids (EOS, EOT), and its template adds its turn ends.
    this.stopIds = this.chatTemplate ? [...this.chatTemplate.stopIds]
      : tok instanceof GgufTokenizer ? [...tok.stopIds]
        : tok ? [tok.bos, tok.eos] : [1];
  }

  /**
   * Does a node's shard hold exactly this group's blocks of this model? The block file's
   * sha256 is the model's identity when the birth carries it; otherwise the folder name.
   */
  serves(group: ModelGroup, shard: ShardRef | undefined): boolean {
    if (!shard) return false;
    if (shard.firstBlock !== group.from || shard.lastBlock !== group.to - 1) return false;
    return shard.sha256 !== undefined ? shard.sha256 === group.sha256 : shard.model === this.name;
  }

  dispose(): void {
    this.head.dispose();
  }
}
