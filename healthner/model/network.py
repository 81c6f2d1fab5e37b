"""encoder -> (BiLSTM) -> dropout -> linear -> (CRF): per-character emissions, marginals, Viterbi.

The CRF's impossible BIO moves (O->I-X, B-X/I-X->I-Y, start->I-X) are pinned to a large negative
score, so Viterbi paths are always valid BIO and marginals give them (numerically) no mass.
"""

from __future__ import annotations

import torch
from torch import nn
from torchcrf import CRF
from transformers import PreTrainedModel

from healthner.corpus.labels import TAGS, is_valid_transition, split_tag
from healthner.model.crf import CrfScores, crf_marginals, crf_viterbi
from healthner.model.lac import LacEncoder
from healthner.model.recurrent import MaskedBiLSTM

FORBIDDEN_SCORE = -1.0e4  # exp() of this is 0 in float32, yet sums of a few stay finite


def transition_masks(tags: tuple[str, ...] = TAGS) -> tuple[torch.Tensor, torch.Tensor]:
    """(forbidden[i, j] for tag i -> tag j, forbidden_start[j]) under strict BIO."""
    forbidden = torch.tensor([[not is_valid_transition(a, b) for b in tags] for a in tags])
    forbidden_start = torch.tensor([split_tag(t)[0] == "I" for t in tags])
    return forbidden, forbidden_start


class NerTagger(nn.Module):
    def __init__(
        self,
        encoder: PreTrainedModel,
        num_tags: int = len(TAGS),
        use_bilstm: bool = True,
        lstm_hidden: int = 128,
        lstm_layers: int = 1,
        dropout: float = 0.1,
        use_crf: bool = True,
        char_features: int = 0,
        bigram_buckets: int = 0,
        bigram_dim: int = 0,
        lac_finetune: bool = False,
        lac_embedding: bool = False,
    ):
        super().__init__()
        self.encoder = encoder
        self.num_tags, self.use_bilstm, self.use_crf = num_tags, use_bilstm, use_crf
        self.char_features = char_features
        self.bigrams = CharBigrams(encoder.config.vocab_size, bigram_buckets, bigram_dim) if bigram_buckets else None
        # LAC trained with the rest (model.lac finetune), or its embedding alone (model.lac embedding);
        # train.build_model loads its pretrained weights
        lac = lac_finetune or lac_embedding
        self.lac = LacEncoder(encoder.config.vocab_size, bigru=lac_finetune) if lac else None
        width = (
            encoder.config.hidden_size + char_features + (2 * bigram_dim if bigram_buckets else 0)
            + (self.lac.width if self.lac is not None else 0)
        )
        self.lstm = MaskedBiLSTM(width, lstm_hidden, lstm_layers) if use_bilstm else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * lstm_hidden if use_bilstm else width, num_tags)
        self.crf = CRF(num_tags, batch_first=True) if use_crf else None
        if self.crf is not None:
            if num_tags != len(TAGS):
                raise ValueError(f"the CRF's BIO constraints need the {len(TAGS)} tags of labels.TAGS")
            forbidden, forbidden_start = transition_masks()
            self.register_buffer("forbidden", forbidden, persistent=False)
            self.register_buffer("forbidden_start", forbidden_start, persistent=False)
            self.enforce_constraints()

    @torch.no_grad()
    def enforce_constraints(self) -> None:
        """Re-pin the forbidden CRF scores; call after every optimiser step (weight decay moves them)."""
        if self.crf is not None:
            self.crf.transitions.masked_fill_(self.forbidden, FORBIDDEN_SCORE)
            self.crf.start_transitions.masked_fill_(self.forbidden_start, FORBIDDEN_SCORE)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Emissions (batch, tokens - 2, tags) for the characters: [CLS] and [SEP] stripped.

        Row i of a window is character i; rows at or past its length are padding
        (see `char_mask`). `features`: (batch, tokens - 2, char_features) per-character features
        (features.CharFeaturizer), joined to the encoder's output when the model was built with
        them. Computed in float32 whatever the autocast dtype.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden[:, 1:-1]
        if self.char_features:
            if features is None or features.shape[-1] != self.char_features:
                raise ValueError(f"this model needs (batch, chars, {self.char_features}) character features")
            hidden = torch.cat([hidden, features.to(hidden.dtype)], dim=-1)
        if self.bigrams is not None:
            hidden = torch.cat([hidden, self.bigrams(input_ids).to(hidden.dtype)], dim=-1)
        if self.lac is not None:
            states = self.lac(input_ids[:, 1:-1], char_lengths(attention_mask))
            hidden = torch.cat([hidden, states.to(hidden.dtype)], dim=-1)
        if self.lstm is not None:
            hidden = self.lstm(hidden, char_lengths(attention_mask))
        return self.classifier(self.dropout(hidden)).float()

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag at each position | sentence): CRF forward-backward, or a softmax without a CRF."""
        if self.crf is None:
            return emissions.softmax(-1)
        return crf_marginals(emissions, mask, CrfScores.of(self.crf))

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best tag ids per sequence (only its real positions): Viterbi, or argmax without a CRF."""
        lengths = mask.sum(1).tolist()
        if self.crf is None:
            best = emissions.argmax(-1)
        else:
            best = crf_viterbi(emissions, mask, CrfScores.of(self.crf))
        return [row[:n] for row, n in zip(best.tolist(), lengths)]


class CharBigrams(nn.Module):
    """Embeddings of each character's left (c[i-1] c[i]) and right (c[i] c[i+1]) bigrams, from the
    window's token ids alone: pair ids are hashed into `buckets` rows (the hashing trick), so no
    bigram vocabulary has to be built, stored or kept in step with the character vocabulary.
    [CLS] and [SEP] stand for the neighbours past the window's edges."""

    def __init__(self, vocab_size: int, buckets: int, dim: int):
        super().__init__()
        self.vocab_size, self.buckets = vocab_size, buckets
        self.embedding = nn.Embedding(buckets, dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, tokens) ids with [CLS]/[SEP] -> (batch, tokens - 2, 2 * dim) for the characters."""
        left = self._bucket(input_ids[:, :-2], input_ids[:, 1:-1])
        right = self._bucket(input_ids[:, 1:-1], input_ids[:, 2:])
        return torch.cat([self.embedding(left), self.embedding(right)], dim=-1)

    def _bucket(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return (first * self.vocab_size + second) % self.buckets


def char_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Mask over the emission rows: character i is real when token i + 2 (past [CLS], char i) is."""
    return attention_mask[:, 2:].bool()


def char_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.sum(1) - 2
