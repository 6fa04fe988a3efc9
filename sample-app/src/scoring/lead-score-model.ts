import { Injectable } from '@nestjs/common';
import { LATENCY_MS, simulateLatency } from '../database/simulated-latency';

/**
 * A stand-in for an expensive scoring model (200 ms, as in the original design): a pure function of the lead id,
 * so every instance computes the same score and nothing needs storing. `runs` counts the computations.
 */
@Injectable()
export class LeadScoreModel {
  runs = 0;

  async score(leadId: string): Promise<{ leadId: string; score: number }> {
    this.runs++;
    await simulateLatency(LATENCY_MS.score);
    let h = 0;
    for (const c of leadId) h = (h * 31 + c.charCodeAt(0)) % 1000;
    return { leadId, score: h / 10 };
  }
}
