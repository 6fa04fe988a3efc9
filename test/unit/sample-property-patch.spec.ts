import { BadRequestException } from '@nestjs/common';
import { parsePropertyPatch } from '../../sample-app/src/properties/property-patch';

/** The sample's PUT /properties/:id body: what both backends may be given. */
describe('sample app: parsePropertyPatch', () => {
  it('keeps the fields a property update may set', () => {
    expect(parsePropertyPatch({ price: 999_000, state: 'under_offer' })).toEqual({ price: 999_000, state: 'under_offer' });
    expect(parsePropertyPatch({ address: '3 Side Street' })).toEqual({ address: '3 Side Street' });
  });

  it.each([
    [null, /JSON object/],
    [[], /JSON object/],
    ['price', /JSON object/],
    [{}, /at least one of address, price, state/],
    [{ id: '7', price: 1 }, /unknown field\(s\): id/],
    [{ price: '300000' }, /price must be a whole number/],
    [{ price: 1.5 }, /price must be a whole number/],
    [{ price: -1 }, /price must be a whole number/],
    [{ price: 2 ** 31 }, /price must be a whole number/],
    [{ state: 'gone' }, /state must be one of listed, under_offer, sold/],
    [{ address: '  ' }, /address must be a non-empty string/],
  ])('refuses %j with a 400 naming the problem', (body, message) => {
    let err: unknown;
    try {
      parsePropertyPatch(body);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadRequestException);
    expect((err as Error).message).toMatch(message);
  });
});
