package org.example.cache;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;

/**
 * 最近最少使用（LRU）缓存：容量满时淘汰最久未访问的条目。
 * A least-recently-used cache; évite les recalculs coûteux.
 */
public final class LruCache<K, V> {
    private final int capacity;
    private final LinkedHashMap<K, V> entries;
    private long hits;
    private long misses;

    public LruCache(int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be positive: " + capacity);
        }
        this.capacity = capacity;
        this.entries = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<K, V> eldest) {
                return size() > LruCache.this.capacity;
            }
        };
    }

    /** 取值；不存在时用 loader 计算并缓存。 */
    public synchronized V get(K key, Function<? super K, ? extends V> loader) {
        Objects.requireNonNull(loader, "loader");
        V value = entries.get(key);
        if (value != null) {
            hits++;
            return value;
        }
        misses++;
        value = loader.apply(key);
        entries.put(key, value);
        return value;
    }

    public synchronized double hitRate() {
        long total = hits + misses;
        return total == 0 ? 0.0 : (double) hits / total;
    }

    public synchronized int size() {
        return entries.size();
    }

    @Override
    public String toString() {
        return String.format("LruCache[size=%d, capacity=%d, hitRate=%.2f ✓]", size(), capacity, hitRate());
    }
}
