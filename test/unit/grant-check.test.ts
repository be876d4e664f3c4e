import { describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import {
  checkAccess,
  grantedTensors,
  grantReleasesFullStates,
} from '../../services/hub/grant-check.js';

const grant = (over: Partial<Parameters<typeof checkAccess>[0]['grants'][number]> = {}) => ({
  id: over.id ?? 'g1',
  streamName: 'default',
  kinds: ['logits', 'probabilities', 'hidden'],
  layers: ['*'],
  fromSequence: 1,
  toSequence: null,
  policy: {},
  ...over,
});
const tensors = [
  { name: 'logits', kind: 'logits' },
  { name: 'probabilities', kind: 'probabilities' },
  { name: 'hidden.hidden_1', kind: 'hidden', layer: 'hidden_1' },
  { name: 'hidden.hidden_2', kind: 'hidden', layer: 'hidden_2' },
];
const denied = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(hasCode(err, 'GRANT_DENIED')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected GRANT_DENIED');
};

describe('checkAccess', () => {
  it('allows what a full grant covers and returns that grant', () => {
    const g = grant();
    expect(
      checkAccess({ participant: 'p', grants: [g], stream: 'default', sequence: 9, tensors }),
    ).toBe(g);
  });

  it('refuses a stream without a grant', () => {
    expect(
      denied(() =>
        checkAccess({ participant: 'p', grants: [grant()], stream: 'other', tensors: [] }),
      ),
    ).toMatch(/no grant for stream "other"/);
  });

  it('refuses a sequence before, and after, the granted range', () => {
    const g = grant({ fromSequence: 3, toSequence: 5 });
    for (const sequence of [2, 6]) {
      expect(
        denied(() =>
          checkAccess({ participant: 'p', grants: [g], stream: 'default', sequence, tensors: [] }),
        ),
      ).toMatch(new RegExp(`version ${sequence} of stream`));
    }
    expect(
      checkAccess({ participant: 'p', grants: [g], stream: 'default', sequence: 5, tensors: [] }),
    ).toBe(g);
  });

  it('refuses a layer the grant does not name, and a kind it lacks', () => {
    const g = grant({ kinds: ['probabilities', 'hidden'], layers: ['hidden_1'] });
    const q = { participant: 'p', grants: [g], stream: 'default', sequence: 1 };
    expect(denied(() => checkAccess({ ...q, tensors: [tensors[3]!] }))).toMatch(
      /hidden layer "hidden_2"/,
    );
    expect(denied(() => checkAccess({ ...q, tensors: [tensors[0]!] }))).toMatch(
      /logits \(tensor "logits"\)/,
    );
    expect(checkAccess({ ...q, tensors: [tensors[1]!, tensors[2]!] })).toBe(g);
  });

  it('does not combine two grants to cover one request', () => {
    const a = grant({ id: 'a', kinds: ['logits'], layers: [] });
    const b = grant({ id: 'b', kinds: ['probabilities'], layers: [] });
    const q = { participant: 'p', grants: [a, b], stream: 'default', sequence: 1 };
    expect(checkAccess({ ...q, tensors: [tensors[1]!] })).toBe(b);
    expect(denied(() => checkAccess({ ...q, tensors: [tensors[0]!, tensors[1]!] }))).toMatch(
      /combination/,
    );
  });
});

describe('grantedTensors', () => {
  it('returns the tensors one grant allows, the most generous grant winning', () => {
    const narrow = grant({ id: 'n', kinds: ['logits'], layers: [] });
    const wide = grant({
      id: 'w',
      kinds: ['probabilities', 'hidden'],
      layers: ['hidden_1', 'hidden_2'],
    });
    const names = grantedTensors({
      participant: 'p',
      grants: [narrow, wide],
      stream: 'default',
      sequence: 1,
      tensors,
    }).map((t) => t.name);
    expect(names).toEqual(['probabilities', 'hidden.hidden_1', 'hidden.hidden_2']);
  });

  it('refuses when the grant allows none of the version’s tensors', () => {
    const g = grant({ kinds: ['artefact'], layers: [] });
    expect(
      denied(() =>
        grantedTensors({ participant: 'p', grants: [g], stream: 'default', sequence: 1, tensors }),
      ),
    ).toMatch(/any tensor/);
  });
});

describe('release policies and published versions', () => {
  const limiting = [
    { release: 'label', queryMode: true },
    { release: 'topk', k: 1, queryMode: true },
    { temperatureFloor: 2, release: 'topk', k: 2 },
    { rowCap: 100 },
    {
      release: 'label',
      dp: { mechanism: 'pate', epsilon: 1, delta: 1e-6 },
      budget: { epsilon: 4, delta: 1e-5 },
    },
    { epsilon: 2 },
  ];

  it('lets only an unlimited policy download the full states of a version', () => {
    expect(grantReleasesFullStates({ policy: {} })).toBe(true);
    expect(grantReleasesFullStates({ policy: { queryMode: true } })).toBe(true);
    for (const policy of limiting) expect(grantReleasesFullStates({ policy })).toBe(false);
  });

  it('refuses a download under a limiting policy, naming query mode', () => {
    for (const policy of limiting) {
      const g = grant({ policy });
      const question = { participant: 'p', grants: [g], stream: 'default', sequence: 1 };
      expect(denied(() => checkAccess({ ...question, tensors }))).toMatch(/query mode only/);
      expect(denied(() => grantedTensors({ ...question, tensors }))).toMatch(/query mode only/);
      // The subscription itself (announcements, no states) stays allowed.
      expect(checkAccess({ ...question, tensors: [] })).toBe(g);
    }
  });

  it('uses an unlimited grant when the participant also holds a limiting one', () => {
    const limited = grant({ id: 'limited', policy: { release: 'label', queryMode: true } });
    const full = grant({ id: 'full' });
    expect(
      checkAccess({
        participant: 'p',
        grants: [limited, full],
        stream: 'default',
        sequence: 1,
        tensors,
      }).id,
    ).toBe('full');
  });
});
