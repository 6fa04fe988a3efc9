import { CanActivate, ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { timingSafeEqual } from 'node:crypto';

/**
 * Protects the cache admin endpoints. In production, put your real auth here (JWT role check, mTLS, …).
 * This demo compares an `x-admin-token` header with ADMIN_TOKEN; with ADMIN_TOKEN unset the endpoints are closed.
 */
@Injectable()
export class AdminGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const expected = process.env.ADMIN_TOKEN;
    const given = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>().headers['x-admin-token'];
    if (!expected || !given || given.length !== expected.length || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
      throw new UnauthorizedException('admin token required');
    }
    return true;
  }
}
