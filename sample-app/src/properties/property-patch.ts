import { BadRequestException } from '@nestjs/common';
import { PROPERTY_STATES, type PropertyPatch, type PropertyState } from '../database/property';

const FIELDS = ['address', 'price', 'state'] as const;

/**
 * The body of `PUT /properties/:id`, checked: one or more of `address` (non-empty string), `price` (integer ≥ 0)
 * and `state` (listed | under_offer | sold), nothing else. A 400 names the field, rather than a database error
 * (or, in memory, a property silently given an `id` or a string price).
 */
export function parsePropertyPatch(body: unknown): PropertyPatch {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequestException('the body must be a JSON object');
  const input = body as Record<string, unknown>;
  const unknown = Object.keys(input).filter((k) => !(FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new BadRequestException(`unknown field(s): ${unknown.join(', ')}; a property update may set ${FIELDS.join(', ')}`);
  const patch: PropertyPatch = {};
  if (input.address !== undefined) {
    if (typeof input.address !== 'string' || input.address.trim() === '') throw new BadRequestException('address must be a non-empty string');
    patch.address = input.address;
  }
  if (input.price !== undefined) {
    if (typeof input.price !== 'number' || !Number.isSafeInteger(input.price) || input.price < 0 || input.price > 2_147_483_647) {
      throw new BadRequestException('price must be a whole number from 0 to 2147483647');
    }
    patch.price = input.price;
  }
  if (input.state !== undefined) {
    if (!(PROPERTY_STATES as readonly unknown[]).includes(input.state)) throw new BadRequestException(`state must be one of ${PROPERTY_STATES.join(', ')}`);
    patch.state = input.state as PropertyState;
  }
  if (Object.keys(patch).length === 0) throw new BadRequestException(`give at least one of ${FIELDS.join(', ')}`);
  return patch;
}
