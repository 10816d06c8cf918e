// Which node may publish activation frames on which other node's job/hop: the successor
// the gateway named for it in a job's offer or route message. The broker learns the grants
// from the gateway's own publishes as they pass, so what a node may send follows exactly
// what the gateway told it, and no second channel between router and broker can disagree.
//
// A grant ends with the job at that node: the close frame the gateway sends it, or the
// node's own answer that it no longer holds the job (refused, handed back, its report).
// A cancel alone does not end it: the node may be mid-forward and publish one last output
// before it reads the cancel, and a refused publish costs the node its connection; its
// report follows the cancel and ends the grant then. A node that disconnects loses all.
import { frameAddress, isFrame, nodeTopic, parseJobControl, parseJobReport, parseNodeTopic } from '../../protocol/index.js';

const JOB_IN = '/job/in';
const JOB_OUT = '/job/out';
const JOB_HOP = '/job/hop';

interface Grant {
  /** The successor's job/hop topic. */
  topic: string;
  sessionId: number;
}

export class HopGrants {
  /** node → job number → where its output frames may go. */
  private readonly byNode = new Map<string, Map<number, Grant>>();

  /** A publish of the gateway's own client: offers and route messages grant, close frames end. */
  fromGateway(topic: string, payload: Buffer): void {
    if (!topic.endsWith(JOB_IN)) return;
    if (isFrame(payload)) {
      // Every frame of every hop passes here: only the header's flag is read.
      const f = frameAddress(payload);
      if (f?.close) this.end(topic, f.jobId);
      return;
    }
    const t = parseNodeTopic(topic);
    const c = parseJobControl(payload);
    if (!t || !c.ok || c.value.type === 'cancel') return;
    const { jobId, next } = c.value;
    if (!next) {
      this.byNode.get(t.nodeId)?.delete(jobId);
      return;
    }
    let jobs = this.byNode.get(t.nodeId);
    if (!jobs) this.byNode.set(t.nodeId, (jobs = new Map()));
    jobs.set(jobId, { topic: nodeTopic(t.fleet, next.nodeId, 'jobHop'), sessionId: next.sessionId });
  }

  /** A node's publish on its own topics: an answer that it does not (or no longer) hold a job ends the grant. */
  fromNode(nodeId: string, topic: string, payload: Buffer): void {
    if (!topic.endsWith(JOB_OUT) || isFrame(payload)) return;
    const r = parseJobReport(payload);
    if (r.ok && r.value.type !== 'accepted') this.byNode.get(nodeId)?.delete(r.value.jobId);
  }

  /** May `nodeId` publish this frame on this job/hop topic: the successor and session of a job it holds? */
  mayHop(nodeId: string, topic: string, payload: Buffer): boolean {
    if (!topic.endsWith(JOB_HOP)) return false;
    const f = frameAddress(payload);
    if (!f) return false;
    const grant = this.byNode.get(nodeId)?.get(f.jobId);
    return grant !== undefined && grant.topic === topic && grant.sessionId === f.sessionId;
  }

  /** The node's connection is gone: whatever it held, it holds no more. */
  forget(nodeId: string): void {
    this.byNode.delete(nodeId);
  }

  /** Does `nodeId` hold a route for `jobId`? */
  holds(nodeId: string, jobId: number): boolean {
    return this.byNode.get(nodeId)?.has(jobId) ?? false;
  }

  /** Grants held now, for tests and stats. */
  get size(): number {
    let n = 0;
    for (const jobs of this.byNode.values()) n += jobs.size;
    return n;
  }

  private end(topic: string, jobId: number): void {
    const t = parseNodeTopic(topic);
    if (t) this.byNode.get(t.nodeId)?.delete(jobId);
  }
}
