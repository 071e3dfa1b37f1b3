import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import java.util.HexFormat;

/**
 * The Java producer's partition for keyed records, from the broker's own kafka-clients jar:
 * `java -cp '<kafka libs>/*' JavaPartition.java <partitions> <key as hex>...` prints one partition
 * per key. Used by test/e2e/kafka-client.test.ts as the reference both Node clients must match.
 */
public class JavaPartition {
  public static void main(String[] args) {
    int partitions = Integer.parseInt(args[0]);
    StringBuilder out = new StringBuilder();
    for (int i = 1; i < args.length; i++) {
      out.append(BuiltInPartitioner.partitionForKey(HexFormat.of().parseHex(args[i]), partitions)).append('\n');
    }
    System.out.print(out);
  }
}
