import { Controller, Get, Injectable, Param } from '@nestjs/common';
import { Cacheable } from '../../../lib';
import { LeadScoreModel } from './lead-score-model';

@Injectable()
export class LeadScoringService {
  constructor(private readonly model: LeadScoreModel) {}

  /** As in the original design: lead scores cached for an hour under the `lead_score` prefix. */
  @Cacheable({ keyPrefix: 'lead_score', ttl: '1h', tags: ['lead:{leadId}'] })
  async score(leadId: string): Promise<{ leadId: string; score: number }> {
    return this.model.score(leadId);
  }
}

@Controller('leads')
export class LeadsController {
  constructor(private readonly scoring: LeadScoringService) {}

  @Get(':leadId/score')
  score(@Param('leadId') leadId: string) {
    return this.scoring.score(leadId);
  }
}
