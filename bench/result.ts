// What one benchmark returns to `npm run bench` (bench/run.ts prints it as a Markdown table).
export interface BenchResult {
  title: string;
  /** Markdown table rows (header first). */
  rows: string[][];
  notes?: string[];
}
