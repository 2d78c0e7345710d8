// Retry an async operation with exponential backoff and jitter. 🔁
export interface RetryOptions {
  retries: number;
  baseDelayMs: number;
  maxDelayMs?: number;
  shouldRetry?: (error: unknown, attempt: number) => boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function backoffDelay(attempt: number, options: RetryOptions, random: () => number = Math.random): number {
  const cap = options.maxDelayMs ?? 30_000;
  const exponential = Math.min(cap, options.baseDelayMs * 2 ** attempt);
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  let lastError: unknown;
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      lastError = error;
      const again = options.shouldRetry?.(error, attempt) ?? true;
      if (!again || attempt === options.retries) {
        break;
      }
      await sleep(backoffDelay(attempt, options));
    }
  }
  throw lastError as Error;
}
